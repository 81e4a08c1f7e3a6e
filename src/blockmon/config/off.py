"""What a container provides in place of PostgreSQL or Redis when its section says
``enabled: false``: any use raises one `Disabled` error naming the setting, so a
PostgreSQL-only (or Redis-only) service needs no server it does not use."""

from __future__ import annotations

from typing import Any, NoReturn

from blockmon.errors import Disabled


class Off:
    """A part turned off in the settings (``section``: ``postgres`` or ``redis``)."""

    def __init__(self, section: str) -> None:
        self.section = section

    def __repr__(self) -> str:
        return f"Off({self.section!r})"

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):  # copy, pickle and friends probe these
            raise AttributeError(name)
        self._refuse(repr(name))

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("a call")

    def _refuse(self, what: str) -> NoReturn:
        raise Disabled(
            f"{self.section} is turned off ({self.section}.enabled: false); "
            f"{what} needs it: set {self.section}.enabled: true to use it"
        )
