pytest_plugins = ["blockmon.testing", "blockmon.testing_deployments"]
