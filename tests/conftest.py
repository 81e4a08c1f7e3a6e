import asyncio

import pytest

from blockmon.config.settings import Settings

pytest_plugins = ["blockmon.testing", "blockmon.testing.deployments"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow run first: on scripts/test's two workers, a long test that
    started last would run alone at the end while the other worker idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def migrated(blockmon_settings: Settings) -> None:
    """The per-run database at the head of the chains the settings name (as ``blockmon
    up`` leaves it), so that health passes."""
    from blockmon.testing import migrate

    asyncio.run(migrate(blockmon_settings))


@pytest.fixture(params=["fast", "fallback"])
def sqlalchemy_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both paths of `blockmon._compat.sqlalchemy`, for modules that apply it to every
    test (``pytestmark = pytest.mark.usefixtures("sqlalchemy_path")``), so the two cannot
    drift: ``fast``, SQLAlchemy's internals as pinned (the probe runs), and ``fallback``,
    the public API, as when a SQLAlchemy release changed the layout (the reference). One
    switch, the layout's answer, set before the test builds its engines."""
    from blockmon._compat import sqlalchemy as sa_compat

    monkeypatch.setattr(sa_compat.LAYOUT, "checked", None if request.param == "fast" else False)
    return str(request.param)
