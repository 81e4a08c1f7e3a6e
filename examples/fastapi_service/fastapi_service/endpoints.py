"""The HTTP API, wired with ``@inject`` and ``Provide``."""

from __future__ import annotations

from typing import Any

from blockmon.fastapi import ReadSession
from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Response, status
from sqlalchemy import func, select

from fastapi_service.containers import Container
from fastapi_service.models import accounts
from fastapi_service.repositories import NotFoundError
from fastapi_service.services import UserService

router = APIRouter()


@router.get("/users")
@inject
async def get_list(
    user_service: UserService = Depends(Provide[Container.user_service]),
) -> list[dict[str, Any]]:
    return [user.__dict__ for user in await user_service.get_users()]


@router.get("/users/{user_id}")
@inject
async def get_by_id(
    user_id: int, user_service: UserService = Depends(Provide[Container.user_service])
) -> Any:
    try:
        return (await user_service.get_user_by_id(user_id)).__dict__
    except NotFoundError:
        return Response(status_code=status.HTTP_404_NOT_FOUND)


@router.post("/users", status_code=status.HTTP_201_CREATED)
@inject
async def add(
    user_service: UserService = Depends(Provide[Container.user_service]),
) -> dict[str, Any]:
    return (await user_service.create_user()).__dict__


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
@inject
async def remove(
    user_id: int, user_service: UserService = Depends(Provide[Container.user_service])
) -> Response:
    try:
        await user_service.delete_user_by_id(user_id)
    except NotFoundError:
        return Response(status_code=status.HTTP_404_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/stats")
async def stats(session: ReadSession) -> dict[str, int]:
    """blockmon's session dependency: a replica when there is one, else the primary."""
    count = (await session.execute(select(func.count()).select_from(accounts))).scalar_one()
    return {"users": count}
