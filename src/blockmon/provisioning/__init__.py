"""Finding the configured PostgreSQL and Redis, or starting embedded ones."""
