"""The application container: blockmon composed in, the service wired on top."""

from __future__ import annotations

from dependency_injector import containers, providers

from alert_rules.repository import RuleRepository
from alert_rules.services import RuleService
from blockmon.containers import ApplicationContainer


class Container(containers.DeclarativeContainer):
    """``Container()`` builds blockmon from ``config.blockmon``; ``Container(blockmon=running)``
    shares an ApplicationContainer that someone else starts (``blockmon up --app``)."""

    wiring_config = containers.WiringConfiguration(modules=["alert_rules.main", "alert_rules.web"])

    config = providers.Configuration()
    blockmon = providers.Container(ApplicationContainer, config=config.blockmon)

    repository = providers.Factory(RuleRepository, statements=blockmon.postgres.statements)
    rule_service = providers.Factory(
        RuleService,
        repository=repository,
        cache=blockmon.redis.cache,
        ttl=config.alerts.cache_ttl.as_float(),
    )
