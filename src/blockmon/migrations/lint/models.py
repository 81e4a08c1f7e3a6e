"""The application's models at head (env.py's ``target_metadata``): a column they still
have is one the running release selects, so dropping it breaks that release."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import MetaData


class Models:
    """The columns of each table the models declare (by table name, any schema)."""

    def __init__(self, columns: dict[str, set[str]]) -> None:
        self.columns = columns

    @classmethod
    def of(cls, target: MetaData | Sequence[MetaData] | None) -> Models | None:
        """None when there are no models to go by: no ``target_metadata``, or one that
        declares no table (an env.py that forgot to import its models reads the same)."""
        metadatas = [target] if isinstance(target, MetaData) else list(target or ())
        columns: dict[str, set[str]] = {}
        for metadata in metadatas:
            for table in metadata.tables.values():
                columns.setdefault(table.name, set()).update(c.name for c in table.columns)
        return cls(columns) if columns else None

    def has(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, ())
