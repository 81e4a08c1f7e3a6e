"""Configuration: settings models, loading YAML + ${VAR} + the environment, secret
redaction and masking, and the logging pipeline that keeps secrets out."""
