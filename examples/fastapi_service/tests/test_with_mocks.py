"""Unit tests: providers overridden with mocks, no server needed (dependency-injector's
fastapi-sqlalchemy example, ported)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from blockmon.testing import use_fake_redis
from fastapi.testclient import TestClient

from fastapi_service.application import create_app
from fastapi_service.containers import Container
from fastapi_service.repositories import NotFoundError, User, UserRepository


@pytest.fixture
def app(blockmon_fake_redis: Any) -> Any:
    container = Container()
    container.config.blockmon.from_dict({})  # nothing connects: no server is needed
    use_fake_redis(container, blockmon_fake_redis)  # the cache works, in memory
    return create_app(container)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    yield TestClient(app)  # not entered: the Lifespan starts nothing


def test_get_list(client: TestClient, app: Any) -> None:
    repository_mock = mock.AsyncMock(spec=UserRepository)
    repository_mock.get_all.return_value = [
        User(id=1, email="test1@email.com", is_active=True),
        User(id=2, email="test2@email.com", is_active=False),
    ]
    with app.container.user_repository.override(repository_mock):
        response = client.get("/users")
    assert response.status_code == 200
    assert response.json() == [
        {"id": 1, "email": "test1@email.com", "is_active": True},
        {"id": 2, "email": "test2@email.com", "is_active": False},
    ]


def test_get_by_id_is_cached(client: TestClient, app: Any) -> None:
    repository_mock = mock.AsyncMock(spec=UserRepository)
    repository_mock.get_by_id.return_value = User(id=1, email="xyz@email.com", is_active=True)
    with app.container.user_repository.override(repository_mock):
        first = client.get("/users/1")
        second = client.get("/users/1")
    assert first.json() == second.json() == {"id": 1, "email": "xyz@email.com", "is_active": True}
    repository_mock.get_by_id.assert_awaited_once_with(1)  # the second came from the cache


def test_get_by_id_404(client: TestClient, app: Any) -> None:
    repository_mock = mock.AsyncMock(spec=UserRepository)
    repository_mock.get_by_id.side_effect = NotFoundError(1)
    with app.container.user_repository.override(repository_mock):
        response = client.get("/users/1")
    assert response.status_code == 404


def test_add(client: TestClient, app: Any) -> None:
    repository_mock = mock.AsyncMock(spec=UserRepository)
    repository_mock.add.return_value = User(id=1, email="xyz@email.com", is_active=True)
    with app.container.user_repository.override(repository_mock):
        response = client.post("/users")
    assert response.status_code == 201
    assert response.json() == {"id": 1, "email": "xyz@email.com", "is_active": True}


def test_remove(client: TestClient, app: Any) -> None:
    repository_mock = mock.AsyncMock(spec=UserRepository)
    with app.container.user_repository.override(repository_mock):
        response = client.delete("/users/1")
    assert response.status_code == 204
    repository_mock.delete_by_id.assert_awaited_once_with(1)


def test_monitoring_says_not_started_without_the_lifespan(client: TestClient) -> None:
    response = client.get("/monitoring/readyz")
    assert response.status_code == 503
    assert "not started" in response.text
