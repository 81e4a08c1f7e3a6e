"""The corpus runs through blockmon's runner, like an application's chain, with the
application's models at head: what the lint's drop-column rule goes by (d22 drops a
column they still have, s31 one they no longer have)."""

from alembic import context
from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from blockmon.migrations import run

models = MetaData()
Table(
    "items",
    models,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
    Column("legacy", Text),  # still read by the running code
)

run(context, target_metadata=models)
