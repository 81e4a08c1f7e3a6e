"""The operations that block or rewrite a table in production, each with the lock it
takes, why it hurts and the safe recipe (after strong_migrations and squawk), and the
check of one revision's parsed statements against them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pglast import ast, enums
from pglast.visitors import Visitor

from blockmon.migrations.lint.catalog import Catalog, TypeKey, type_key
from blockmon.migrations.lint.models import Models
from blockmon.migrations.lint.script import Revision, Statement

# pg_locks' names of the lock modes, as PostgreSQL's docs write them
MODE_NAMES = {
    "AccessShareLock": "ACCESS SHARE",
    "RowShareLock": "ROW SHARE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}
_EXCLUSIVE = "AccessExclusiveLock"


@dataclass(frozen=True)
class Rule:
    why: str
    recipe: str


RULES: dict[str, Rule] = {
    "index-not-concurrent": Rule(
        "CREATE INDEX holds a SHARE lock for the whole build: every INSERT, UPDATE and "
        "DELETE on the table waits until the index is built",
        "CREATE INDEX CONCURRENTLY outside the revision's transaction: "
        "blockmon.migrations.create_index_concurrently(...) in the revision",
    ),
    "constraint-builds-index": Rule(
        "ADD PRIMARY KEY / UNIQUE builds its index under ACCESS EXCLUSIVE: reads and "
        "writes wait for the whole build",
        "CREATE UNIQUE INDEX CONCURRENTLY in one revision, then ADD CONSTRAINT name "
        "UNIQUE USING INDEX name (or PRIMARY KEY USING INDEX) in the next",
    ),
    "column-type-rewrite": Rule(
        "the type change rewrites the table and its indexes under ACCESS EXCLUSIVE: "
        "nothing reads or writes the table until it is done",
        "add a column of the new type, backfill it in batches, move reads and writes, drop "
        "the old one; widening varchar(n), varchar to text and numeric precision do not rewrite",
    ),
    "set-not-null": Rule(
        "SET NOT NULL scans every row under ACCESS EXCLUSIVE",
        "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c in a later "
        "revision; then SET NOT NULL skips the scan (PostgreSQL 12+) and the check can go",
    ),
    "constraint-not-valid": Rule(
        "the new constraint is checked against every row while the lock is held (for a "
        "foreign key, on the referenced table too)",
        "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later revision "
        "(SHARE UPDATE EXCLUSIVE: reads and writes go on)",
    ),
    "volatile-default": Rule(
        "a volatile default (or a serial, identity or stored generated column) is computed "
        "for every row: the table is rewritten under ACCESS EXCLUSIVE",
        "add the column with no default (or a constant one), set the default for new rows, "
        "backfill existing rows in batches",
    ),
    "rename-table": Rule(
        "instances still running the previous release use the old name: their queries "
        "fail from the commit until every instance runs the new code",
        "deploy code that works with both names first (or leave a view with the old name), "
        "rename in a later release",
    ),
    "rename-column": Rule(
        "instances still running the previous release select the old column name (SQLAlchemy "
        "names every column): their queries fail until every instance runs the new code",
        "add the new column, write both, backfill, move reads, drop the old one in a later release",
    ),
    "drop-column": Rule(
        "drop of a column still in the application's models: instances running that code "
        "select the column (SQLAlchemy names every column), so their queries fail from the "
        "commit until every instance runs code without it",
        "remove the column from the models and deploy that first; drop it in a later release",
    ),
    "vacuum-full": Rule(
        "VACUUM FULL rewrites the whole table under ACCESS EXCLUSIVE",
        "plain VACUUM, or pg_repack / pg_squeeze to compact online",
    ),
    "cluster": Rule(
        "CLUSTER rewrites the whole table under ACCESS EXCLUSIVE",
        "pg_repack --order-by to reorder online",
    ),
    "missing-lock-timeout": Rule(
        "without lock_timeout a statement waiting for its lock queues every later query on "
        "the table behind it: one long transaction elsewhere stalls the application",
        "run the chain through blockmon (env.py calls blockmon.migrations.run, which sets "
        "migrations.lock_timeout), or SET LOCAL lock_timeout at the top of the revision",
    ),
}

_VOLATILE = frozenset(
    {
        "random",
        "random_normal",
        "gen_random_uuid",
        "uuidv4",
        "uuidv7",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "txid_current",
        "pg_current_xact_id",
    }
)
_SERIAL = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})


@dataclass(frozen=True)
class Finding:
    """One rule broken by one statement; ``locks`` are (table, pg_locks mode) expected."""

    revision: str
    path: str
    rule: str
    statement: str
    index: int  # the statement's position in the revision
    locks: tuple[tuple[str, str], ...]
    rewrites: bool
    detail: str = ""  # what the rule went by, when it is not the statement alone
    accepted: str | None = None

    @property
    def lock(self) -> str:
        if not self.locks:
            return "none"
        return ", ".join(f"{MODE_NAMES[mode]} on {table}" for table, mode in self.locks)

    @property
    def why(self) -> str:
        return RULES[self.rule].why

    @property
    def recipe(self) -> str:
        return RULES[self.rule].recipe


def lock_timeout_in(statement: Statement) -> bool | None:
    """True/False when the statement sets lock_timeout on/off, None when it does not."""
    node = statement.node
    if not isinstance(node, ast.VariableSetStmt) or node.name != "lock_timeout":
        return None
    if node.kind != enums.VariableSetKind.VAR_SET_VALUE or not node.args:
        return False
    value = getattr(node.args[0], "val", None)
    raw = value.ival if isinstance(value, ast.Integer) else getattr(value, "sval", "0")
    return str(raw).strip() not in ("0", "0ms", "0s", "")


@dataclass
class _Check:
    """The state while one revision is read: tables it created, NOT VALID constraints it
    added, whether lock_timeout is on."""

    revision: Revision
    catalog: Catalog
    timeout: bool
    models: Models | None
    created: set[str] = field(default_factory=set)
    not_valid: set[tuple[str, str]] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    waits_unbounded: bool = False

    def add(
        self,
        rule: str,
        index: int,
        locks: tuple[tuple[str, str], ...],
        rewrites: bool = False,
        detail: str = "",
    ) -> None:
        sql = self.revision.statements[index].sql
        self.findings.append(
            Finding(
                self.revision.revision,
                self.revision.path,
                rule,
                sql,
                index,
                locks,
                rewrites,
                detail,
            )
        )


def check_revision(
    revision: Revision, catalog: Catalog, timeout: bool, models: Models | None
) -> list[Finding]:
    """The findings of one revision; ``catalog`` holds the chain before it and is brought
    past it; ``timeout``: lock_timeout is on when the revision starts; ``models``: the
    application's models at head (None: unknown)."""
    check = _Check(revision, catalog, timeout, models)
    for index, statement in enumerate(revision.statements):
        setting = lock_timeout_in(statement)
        if setting is not None:
            check.timeout = setting
        _statement(check, index, statement.node)
        catalog.apply(statement.node)
    return check.findings


def _statement(check: _Check, index: int, node: ast.Node) -> None:
    table = _target(node)
    if isinstance(node, ast.CreateStmt) and node.relation is not None:
        check.created.add(str(node.relation.relname))
    if table is None or table in check.created:
        if isinstance(node, ast.RenameStmt) and node.renameType == enums.ObjectType.OBJECT_TABLE:
            check.created.add(str(node.newname))  # still the revision's own table
        return
    if not check.timeout and not check.waits_unbounded:
        check.waits_unbounded = True
        check.add("missing-lock-timeout", index, ())
    if isinstance(node, ast.IndexStmt) and not node.concurrent:
        check.add("index-not-concurrent", index, ((table, "ShareLock"),))
    elif isinstance(node, ast.AlterTableStmt):
        for cmd in node.cmds or ():
            _alter(check, index, table, cmd)
    elif isinstance(node, ast.RenameStmt):
        if node.renameType == enums.ObjectType.OBJECT_TABLE:
            check.add("rename-table", index, ((table, _EXCLUSIVE),))
        elif node.renameType == enums.ObjectType.OBJECT_COLUMN:
            check.add("rename-column", index, ((table, _EXCLUSIVE),))
    elif isinstance(node, ast.ClusterStmt):
        check.add("cluster", index, ((table, _EXCLUSIVE),), rewrites=True)
    elif isinstance(node, ast.VacuumStmt):
        check.add("vacuum-full", index, ((table, _EXCLUSIVE),), rewrites=True)


def _target(node: ast.Node) -> str | None:
    """The existing table a statement locks for more than an instant, if any."""
    if isinstance(node, ast.IndexStmt | ast.AlterTableStmt | ast.ClusterStmt):
        if isinstance(node, ast.AlterTableStmt) and node.objtype != enums.ObjectType.OBJECT_TABLE:
            return None
        return str(node.relation.relname) if node.relation is not None else None
    if isinstance(node, ast.RenameStmt) and node.relation is not None:
        return str(node.relation.relname)
    if isinstance(node, ast.VacuumStmt) and _vacuum_full(node) and node.rels:
        relation = node.rels[0].relation
        return str(relation.relname) if relation is not None else None
    return None


def _vacuum_full(node: ast.VacuumStmt) -> bool:
    return bool(node.is_vacuumcmd) and any(o.defname == "full" for o in node.options or ())


def _alter(check: _Check, index: int, table: str, cmd: ast.AlterTableCmd) -> None:
    kind = enums.AlterTableType
    known = check.catalog.tables.get(table)
    exclusive = ((table, _EXCLUSIVE),)
    if cmd.subtype == kind.AT_AlterColumnType and isinstance(cmd.def_, ast.ColumnDef):
        old = known.columns.get(str(cmd.name)) if known else None
        new = type_key(cmd.def_.typeName)
        if _rewrites(old, new, cmd.def_.raw_default is not None):
            check.add("column-type-rewrite", index, exclusive, rewrites=True)
    elif cmd.subtype == kind.AT_SetNotNull:
        column = str(cmd.name)
        proven = known is not None and (
            column in known.not_null
            or any(c == column and valid for c, valid in known.null_checks.values())
        )
        if not proven:
            check.add("set-not-null", index, exclusive)
    elif cmd.subtype == kind.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        _constraint(check, index, table, cmd.def_)
    elif cmd.subtype == kind.AT_ValidateConstraint and (table, str(cmd.name)) in check.not_valid:
        # validated in the transaction that added it: ADD CONSTRAINT's lock lasts the scan
        check.add("constraint-not-valid", index, exclusive)
    elif cmd.subtype == kind.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        if _rewriting_column(cmd.def_):
            check.add("volatile-default", index, exclusive, rewrites=True)
    elif cmd.subtype == kind.AT_DropColumn:
        _drop_column(check, index, table, str(cmd.name))


def _drop_column(check: _Check, index: int, table: str, column: str) -> None:
    """A finding when the models still have the column, or when there are no models to
    tell (env.py passes no ``target_metadata``): a column already out of the models is
    the safe second step."""
    exclusive = ((table, _EXCLUSIVE),)
    if check.models is None:
        detail = (
            f"env.py gives the lint no models (target_metadata), so whether they still "
            f"have {table}.{column} is unknown"
        )
        check.add("drop-column", index, exclusive, detail=detail)
    elif check.models.has(table, column):
        detail = f"{table}.{column} is still in the application's models (target_metadata)"
        check.add("drop-column", index, exclusive, detail=detail)


def _constraint(check: _Check, index: int, table: str, con: ast.Constraint) -> None:
    types = enums.ConstrType
    if con.skip_validation:
        if con.conname:
            check.not_valid.add((table, str(con.conname)))
        return
    if con.contype == types.CONSTR_FOREIGN and con.pktable is not None:
        mode = "ShareRowExclusiveLock"
        other = str(con.pktable.relname)
        locks = ((table, mode),) + (((other, mode),) if other != table else ())
        check.add("constraint-not-valid", index, locks)
    elif con.contype == types.CONSTR_CHECK:
        check.add("constraint-not-valid", index, ((table, _EXCLUSIVE),))
    elif (
        con.contype in (types.CONSTR_PRIMARY, types.CONSTR_UNIQUE, types.CONSTR_EXCLUSION)
        and not con.indexname
    ):
        check.add("constraint-builds-index", index, ((table, _EXCLUSIVE),))


def _rewrites(old: TypeKey | None, new: TypeKey | None, using: bool) -> bool:
    """Whether ALTER COLUMN TYPE rewrites: only the binary-compatible widenings do not."""
    if using or old is None or new is None:
        return True
    if old == new:
        return False
    (was, was_mods), (now, now_mods) = old, new
    if was in ("varchar", "text") and now in ("varchar", "text"):
        if now == "text" or not now_mods:
            return False
        return not (was == "varchar" and was_mods and now_mods[0] >= was_mods[0])
    if was == now == "numeric":
        if not now_mods:
            return False
        return not (
            len(was_mods) == len(now_mods)
            and now_mods[0] >= was_mods[0]
            and now_mods[1:] == was_mods[1:]
        )
    return True


class _Calls(Visitor):
    """The names of the functions an expression calls."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        self.names.add(str((node.funcname or ())[-1].sval).lower())


def _rewriting_column(column: ast.ColumnDef) -> bool:
    kind = type_key(column.typeName)
    if kind is not None and kind[0] in _SERIAL:
        return True
    types = enums.ConstrType
    for con in column.constraints or ():
        if con.contype in (types.CONSTR_IDENTITY, types.CONSTR_GENERATED):
            return True
        if con.contype == types.CONSTR_DEFAULT and con.raw_expr is not None:
            calls = _Calls()
            calls(con.raw_expr)
            if calls.names & _VOLATILE:
                return True
    return False
