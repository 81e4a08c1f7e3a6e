"""Configuration: settings models, loading YAML + ${VAR} + the environment, secret
redaction and masking, the logging pipeline that keeps secrets out, and the warning a
renamed public name gives for one release."""
