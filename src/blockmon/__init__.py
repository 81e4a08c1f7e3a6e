"""blockmon: PostgreSQL and Redis for async Python services, as dependency-injector containers."""

from __future__ import annotations

__version__ = "0.1.0"
