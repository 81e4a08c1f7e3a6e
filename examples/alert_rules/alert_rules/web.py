"""The HTTP face of the example: a Starlette app over the same wired RuleService.

``create_app(blockmon)`` is the factory for ``blockmon up --serve --app
alert_rules.web:create_app``: it receives blockmon's running ApplicationContainer and
shares it (engine, Redis client, metrics), so the monitoring endpoints count this API's
queries and one Lifespan starts and stops everything.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from dependency_injector.wiring import Provide, inject
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alert_rules.containers import Container
from alert_rules.main import cache_ttl
from alert_rules.services import RuleService
from blockmon.containers import ApplicationContainer


class NewUser(BaseModel):
    telegram_id: int
    username: str | None = Field(default=None, max_length=255)


class NewRule(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    rule_type: str = Field(min_length=1, max_length=50)
    conditions: dict[str, Any]
    description: str | None = None


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def body_of(request: Request, model: type[BaseModel]) -> Any:
    """The validated JSON body, or a 400/422 response naming what is wrong."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as invalid:
        problem = invalid.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        status = 400 if problem["type"] == "json_invalid" else 422
        return error(status, f"{where}: {problem['msg']}")


async def index(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "endpoints": [
                "POST /users",
                "GET /users/{user_id}/rules",
                "POST /users/{user_id}/rules",
                "GET /rules/{rule_id}",
            ]
        }
    )


@inject
async def add_user(
    request: Request, service: RuleService = Provide[Container.rule_service]
) -> JSONResponse:
    user = await body_of(request, NewUser)
    if isinstance(user, JSONResponse):
        return user
    user_id = await service.add_user(user.telegram_id, user.username)
    return JSONResponse({"id": user_id}, status_code=201)


@inject
async def user_rules(
    request: Request, service: RuleService = Provide[Container.rule_service]
) -> JSONResponse:
    user_id: int = request.path_params["user_id"]
    if request.method == "GET":
        return JSONResponse(await service.rules_of(user_id))
    rule = await body_of(request, NewRule)
    if isinstance(rule, JSONResponse):
        return rule
    try:
        created = await service.add_rule(
            user_id, rule.name, rule.rule_type, rule.conditions, rule.description
        )
    except asyncpg.ForeignKeyViolationError:
        return error(404, f"no user {user_id}")
    return JSONResponse(created, status_code=201)


@inject
async def get_rule(
    request: Request, service: RuleService = Provide[Container.rule_service]
) -> JSONResponse:
    rule_id: int = request.path_params["rule_id"]
    found = await service.rule(rule_id)
    return error(404, f"no rule {rule_id}") if found is None else JSONResponse(found)


ROUTES = [
    Route("/", index),
    Route("/users", add_user, methods=["POST"]),
    Route("/users/{user_id:int}/rules", user_rules, methods=["GET", "POST"]),
    Route("/rules/{rule_id:int}", get_rule),
]


def create_app(blockmon: ApplicationContainer) -> Starlette:
    container = Container(blockmon=blockmon)  # share the running container, wire this module
    container.config.alerts.cache_ttl.from_value(cache_ttl())
    app = Starlette(routes=ROUTES)
    app.state.container = container
    return app
