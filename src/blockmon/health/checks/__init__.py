"""The health checks themselves, one module per component or topology."""
