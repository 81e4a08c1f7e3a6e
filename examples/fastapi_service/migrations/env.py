"""Alembic environment of the service: one call, with the service's models."""

from alembic import context
from blockmon.migrations import run

from fastapi_service.models import metadata

run(context, target_metadata=metadata)
