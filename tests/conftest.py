pytest_plugins = ["blockmon.testing", "blockmon.testing.deployments"]
