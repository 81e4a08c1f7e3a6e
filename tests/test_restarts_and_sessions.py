"""Every provider follows its Resource across restarts (``asyncio.run`` three times,
FastAPI's ``TestClient`` three times), and request-scoped sessions in FastAPI and
Litestar: committed on success, rolled back on an exception, closed after the request;
reads on the replica when there is one, else the primary."""

from __future__ import annotations

import asyncio
import gc
import secrets
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from dependency_injector import containers, providers
from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, FastAPI, HTTPException
from litestar import Litestar, get, post
from litestar.exceptions import HTTPException as LitestarHTTPException
from sqlalchemy import text

from blockmon import ApplicationContainer, Lifespan, monitoring_app
from blockmon.errors import UsageError
from blockmon.fastapi import ReadSession, WriteSession, attach
from blockmon.health.model import Status
from blockmon.litestar import BlockmonPlugin
from blockmon.litestar import ReadSession as LitestarReadSession
from blockmon.litestar import WriteSession as LitestarWriteSession
from blockmon.postgres.engine import create_engine


class App(containers.DeclarativeContainer):
    config = providers.Configuration()
    blockmon = providers.Container(ApplicationContainer, config=config.blockmon)


def _app_container(config: dict[str, Any]) -> App:
    app = App()
    app.config.blockmon.from_dict(config)
    return app


@pytest.fixture
def quiet() -> Iterator[list[warnings.WarningMessage]]:
    """No warning of any kind during the test (unclosed connections, loops, ...)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Starlette's own notice about its test client's transport, not ours
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        # anyio's notice when the lowest allowed Starlette's test client is first imported
        # (which test imports it first depends on the order of the run)
        warnings.filterwarnings("ignore", message="The anyio.abc.BlockingPortal alias")
        # Litestar's notices about how this test declares its own handlers' parameters
        warnings.filterwarnings("ignore", message=".*without a body marker")
        yield caught
        gc.collect()
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


@pytest_asyncio.fixture
async def notes(blockmon_config: dict[str, Any]) -> AsyncIterator[str]:
    """A table of this test's own in the per-run database."""
    from blockmon.config.settings import PostgresSettings

    name = f"notes_{secrets.token_hex(4)}"
    engine = create_engine(PostgresSettings.model_validate(blockmon_config["postgres"]))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {name} (body text PRIMARY KEY)"))
        yield name
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {name}"))
    finally:
        await engine.dispose()


async def _use_every_provider(app: App, seen: list[Any]) -> None:
    bm = app.blockmon
    engine = await bm.postgres.engine()
    factory = await bm.postgres.session_factory()
    transactions = await bm.postgres.transactions()
    statements = await bm.postgres.statements()
    router = await bm.postgres.router()
    client = await bm.redis.client()
    cache = await bm.redis.cache()
    assert factory.kw["bind"] is engine
    assert transactions.session_factory is factory
    assert statements.engine is engine
    assert router.writer is engine
    assert cache.client is client
    assert all(engine is not old for old in seen)
    seen.append(engine)
    assert await statements.scalar("SELECT 1") == 1
    async with transactions.transaction() as session:
        assert (await session.execute(text("SELECT 2"))).scalar() == 2
    async with router.read_session() as session:
        assert (await session.execute(text("SELECT 3"))).scalar() == 3
    sessions = await bm.postgres.sessions()  # what WriteSession / ReadSession hand out
    assert sessions.session_factory is factory and sessions.router is router
    async with sessions.write() as session:
        assert (await session.execute(text("SELECT 4"))).scalar() == 4
    async with sessions.read() as session:
        assert (await session.execute(text("SELECT 5"))).scalar() == 5
    await cache.set_json("probe", {"n": len(seen)}, ttl=30)
    assert await cache.get_json("probe") == {"n": len(seen)}
    checker = await bm.monitoring.health()
    report = await checker.report(max_age=0)
    assert {r.component: r.status for r in report.results if r.status != Status.PASS} == {}
    metrics = await bm.monitoring.metrics()
    assert metrics.registry is bm.monitoring.registry()
    exposed = await bm.monitoring.exposed()
    assert any(m.name.startswith("postgres_") for m in exposed.collect())


def test_three_starts_with_asyncio_run(
    blockmon_config: dict[str, Any], migrated: None, quiet: list[Any]
) -> None:
    app = _app_container(blockmon_config)
    seen: list[Any] = []

    async def once() -> None:
        async with Lifespan(app):
            await _use_every_provider(app, seen)

    for _ in range(3):
        asyncio.run(once())
    assert len(seen) == 3


def _fastapi_app(app: App, table: str, *, attached: bool = False) -> Any:
    """Routes on an APIRouter, included as real applications do (FastAPI then wraps the
    lifespan); ``attached``: the sessions' container given without the lifespan."""
    web = FastAPI(lifespan=Lifespan(app))
    web.mount("/monitoring", monitoring_app(app.blockmon()))
    router = APIRouter()

    @router.post("/notes/{body}", status_code=201)
    async def add(body: str, session: WriteSession) -> dict[str, str]:
        await session.execute(text(f"INSERT INTO {table} VALUES (:b)"), {"b": body})
        if body.startswith("bad"):
            raise HTTPException(409, "refused after the insert")
        return {"body": body}

    @router.post("/notes/{body}/twice", status_code=201)
    async def add_twice(body: str, session: WriteSession) -> dict[str, str]:
        """A route that commits on its own, then goes on with the same session."""
        await session.execute(text(f"INSERT INTO {table} VALUES (:b)"), {"b": body})
        await session.commit()
        await session.execute(text(f"INSERT INTO {table} VALUES (:b)"), {"b": body + "+"})
        return {"body": body}

    @router.post("/notes/{body}/checked", status_code=201)
    async def add_checked(body: str, reads: ReadSession, session: WriteSession) -> dict[str, str]:
        """Both sessions in one route (the read one first), as repositories often take."""
        taken = await reads.execute(
            text(f"SELECT count(*) FROM {table} WHERE body = :b"), {"b": body}
        )
        if taken.scalar():
            raise HTTPException(409, "taken")
        await session.execute(text(f"INSERT INTO {table} VALUES (:b)"), {"b": body})
        return {"body": body}

    @router.get("/notes")
    async def listed(session: ReadSession) -> list[str]:
        rows = await session.execute(text(f"SELECT body FROM {table} ORDER BY body"))
        return list(rows.scalars())

    @router.get("/pool")
    @inject
    async def pool(engine: Any = Provide[App.blockmon.postgres.engine]) -> int:
        return int(engine.sync_engine.pool.checkedout())

    web.include_router(router)
    if attached:
        attach(web, app)
    app.wire(modules=[__name__])
    return web


def test_three_starts_in_testclient_with_sessions(
    blockmon_config: dict[str, Any], migrated: None, notes: str, quiet: list[Any]
) -> None:
    from fastapi.testclient import TestClient

    app = _app_container(blockmon_config)
    web = _fastapi_app(app, notes)
    seen: list[Any] = []
    try:
        for round_ in range(3):
            with TestClient(web) as client:
                client.portal.call(_use_every_provider, app, seen)  # type: ignore[union-attr]
                assert client.post(f"/notes/ok{round_}").status_code == 201
                assert client.post(f"/notes/bad{round_}").status_code == 409
                assert client.get("/notes").json() == [f"ok{i}" for i in range(round_ + 1)]
                assert client.get("/pool").json() == 0  # every session closed
                assert client.get("/monitoring/readyz").status_code == 200
    finally:
        app.unwire()


async def test_sessions_on_the_tests_loop(
    blockmon_container: ApplicationContainer, migrated: None, notes: str
) -> None:
    """The other way to test: the fixture's started container, httpx on the test's loop,
    the app's lifespan not run."""
    app = App(blockmon=blockmon_container)
    unattached = _fastapi_app(app, notes)
    transport = httpx.ASGITransport(app=unattached)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with pytest.raises(UsageError, match=r"blockmon\.fastapi\.attach\(app, container\)"):
            await client.get("/notes")
    web = _fastapi_app(app, notes, attached=True)
    try:
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/notes/kept")).status_code == 201
            assert (await client.post("/notes/bad")).status_code == 409
            assert (await client.post("/notes/again/twice")).status_code == 201
            assert (await client.get("/notes")).json() == ["again", "again+", "kept"]
            assert (await client.get("/pool")).json() == 0
    finally:
        app.unwire()


def test_a_mounted_app_gets_sessions_once_attached(
    blockmon_config: dict[str, Any], migrated: None, notes: str
) -> None:
    """Routes of a FastAPI app mounted in another see the mounted app, whose lifespan
    never runs: the error says so, and ``attach(api, container)`` is the fix."""
    from fastapi.testclient import TestClient

    app = _app_container(blockmon_config)
    api = FastAPI()

    @api.get("/notes")
    async def listed(session: ReadSession) -> list[str]:
        rows = await session.execute(text(f"SELECT body FROM {notes}"))
        return list(rows.scalars())

    root = FastAPI(lifespan=Lifespan(app))
    root.mount("/api", api)
    with TestClient(root) as client:
        with pytest.raises(UsageError, match="mounted in another one"):
            client.get("/api/notes")
        attach(api, app)
        assert client.get("/api/notes").json() == []


def test_litestar_plugin_sessions(
    blockmon_config: dict[str, Any], migrated: None, notes: str, quiet: list[Any]
) -> None:
    from litestar.testing import TestClient

    @post("/notes")
    async def add(data: dict[str, str], session: LitestarWriteSession) -> dict[str, str]:
        note = data["body"]
        await session.execute(text(f"INSERT INTO {notes} VALUES (:b)"), {"b": note})
        if note.startswith("bad"):
            raise LitestarHTTPException(status_code=409, detail="refused after the insert")
        return {"body": note}

    @get("/notes")
    async def listed(read_session: LitestarReadSession) -> list[str]:
        rows = await read_session.execute(text(f"SELECT body FROM {notes} ORDER BY body"))
        return list(rows.scalars())

    app = _app_container(blockmon_config)
    web = Litestar([add, listed], plugins=[BlockmonPlugin(app)])
    for round_ in range(2):
        with TestClient(web) as client:
            assert client.post("/notes", json={"body": f"ok{round_}"}).status_code == 201
            assert client.post("/notes", json={"body": f"bad{round_}"}).status_code == 409
            assert client.get("/notes").json() == [f"ok{i}" for i in range(round_ + 1)]
            with client.portal() as portal:
                engine = portal.call(app.blockmon.postgres.engine)
            assert engine.sync_engine.pool.checkedout() == 0


async def test_per_test_rollback(
    notes: str, migrated: None, blockmon_container: ApplicationContainer, blockmon_rollback: Any
) -> None:
    """``blockmon_rollback``: the routes' commits end savepoints of one outer transaction
    that the fixture rolls back; other connections never see the test's rows. (``notes``
    first: its table is dropped after the rollback released the rows' locks.)"""
    app = App(blockmon=blockmon_container)
    web = _fastapi_app(app, notes, attached=True)
    try:
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/notes/mine")).status_code == 201
            assert (await client.post("/notes/bad")).status_code == 409  # its savepoint only
            # a read session opened before the write one does not undo its write
            assert (await client.post("/notes/both/checked")).status_code == 201
            assert (await client.post("/notes/both/checked")).status_code == 409
            assert (await client.get("/notes")).json() == ["both", "mine"]
    finally:
        app.unwire()
    engine = await blockmon_container.postgres.engine()
    async with engine.connect() as other:
        assert (await other.execute(text(f"SELECT count(*) FROM {notes}"))).scalar() == 0


@pytest_asyncio.fixture
async def deferred(blockmon_config: dict[str, Any]) -> AsyncIterator[str]:
    """A table whose uniqueness is checked only at COMMIT (a deferred constraint)."""
    from blockmon.config.settings import PostgresSettings

    name = f"deferred_{secrets.token_hex(4)}"
    engine = create_engine(PostgresSettings.model_validate(blockmon_config["postgres"]))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(f"CREATE TABLE {name} (body text UNIQUE DEFERRABLE INITIALLY DEFERRED)")
            )
        yield name
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {name}"))
    finally:
        await engine.dispose()


def test_a_write_whose_commit_fails_is_never_a_success(
    blockmon_config: dict[str, Any], deferred: str
) -> None:
    """The write session commits before the response is sent: a commit the server refuses
    (here a deferred constraint, as a serialization failure would be) is the route's 500,
    not a 201 for a row that is not there (FastAPI ends a ``yield`` dependency after the
    response unless told otherwise)."""
    from fastapi.testclient import TestClient

    app = _app_container(blockmon_config)
    web = FastAPI(lifespan=Lifespan(app))

    @web.post("/twice/{body}", status_code=201)
    async def twice(body: str, session: WriteSession) -> dict[str, str]:
        for _ in range(2):  # accepted by each INSERT, refused by the COMMIT
            await session.execute(text(f"INSERT INTO {deferred} VALUES (:b)"), {"b": body})
        return {"body": body}

    @web.get("/rows")
    async def rows(session: ReadSession) -> list[str]:
        return list((await session.execute(text(f"SELECT body FROM {deferred}"))).scalars())

    with TestClient(web, raise_server_exceptions=False) as client:
        assert client.post("/twice/x").status_code == 500
        assert client.get("/rows").json() == []
        engine = client.portal.call(app.blockmon.postgres.engine)  # type: ignore[union-attr]
        assert engine.sync_engine.pool.checkedout() == 0


def test_read_session_reads_from_the_replica_write_session_writes_to_the_primary(
    blockmon_config: dict[str, Any], blockmon_settings: Any
) -> None:
    """``postgres.replicas`` names a reader (here the run's server under another
    ``application_name``, a libpq option blockmon translates): ``ReadSession`` is on it,
    ``WriteSession`` on the writer; without replicas both are on the writer."""
    from fastapi.testclient import TestClient

    from blockmon.postgres.engine import engine_url

    reader = engine_url(blockmon_settings.postgres).update_query_dict(
        {"application_name": "blockmon-reader"}
    )
    name = "SELECT current_setting('application_name')"

    def served(config: dict[str, Any]) -> tuple[str, str]:
        app = _app_container(config)
        web = FastAPI(lifespan=Lifespan(app))

        @web.get("/read")
        async def read(session: ReadSession) -> str:
            return str((await session.execute(text(name))).scalar())

        @web.get("/write")
        async def write(session: WriteSession) -> str:
            return str((await session.execute(text(name))).scalar())

        with TestClient(web) as client:
            return client.get("/read").json(), client.get("/write").json()

    writer = blockmon_settings.postgres.application_name
    assert writer != "blockmon-reader"
    replicas = {"replicas": [reader.render_as_string(hide_password=False)]}
    with_replica = {**blockmon_config, "postgres": {**blockmon_config["postgres"], **replicas}}
    assert served(with_replica) == ("blockmon-reader", writer)
    assert served(blockmon_config) == (writer, writer)
