"""An alert-rule service: rules live in PostgreSQL and are cached in Redis."""
