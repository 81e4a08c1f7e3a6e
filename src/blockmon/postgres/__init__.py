"""PostgreSQL: the engine (pool, timeouts, validation), the one-round-trip statement path,
units of work, and read replicas."""
