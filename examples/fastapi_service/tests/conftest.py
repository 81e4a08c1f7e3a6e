pytest_plugins = ["blockmon.testing"]
