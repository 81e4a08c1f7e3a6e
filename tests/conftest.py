import pytest

pytest_plugins = ["blockmon.testing", "blockmon.testing.deployments"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow run first: on scripts/test's two workers, a long test that
    started last would run alone at the end while the other worker idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
