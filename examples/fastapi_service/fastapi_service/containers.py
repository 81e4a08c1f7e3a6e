"""The service's container: blockmon composed in, the service's providers on top."""

from __future__ import annotations

from blockmon import ApplicationContainer
from dependency_injector import containers, providers

from fastapi_service.checks import register_accounts_check
from fastapi_service.repositories import UserRepository
from fastapi_service.services import UserService


class Container(containers.DeclarativeContainer):
    """``Container()`` builds blockmon from ``config.blockmon``; tests pass a running one:
    ``Container(blockmon=blockmon_container)``."""

    wiring_config = containers.WiringConfiguration(modules=["fastapi_service.endpoints"])

    config = providers.Configuration()
    blockmon = providers.Container(ApplicationContainer, config=config.blockmon)

    user_repository = providers.Factory(UserRepository, engine=blockmon.postgres.engine)
    user_service = providers.Factory(
        UserService, user_repository=user_repository, cache=blockmon.redis.cache
    )
    # --8<-- [start:check]
    # your own Resources start and stop with blockmon's (the app's Lifespan runs them all)
    accounts_check = providers.Resource(
        register_accounts_check,
        checker=blockmon.monitoring.health,
        statements=blockmon.postgres.statements,
    )
    # --8<-- [end:check]
