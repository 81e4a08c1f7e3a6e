"""A FastAPI service with its own tables and migrations, embedding blockmon."""
