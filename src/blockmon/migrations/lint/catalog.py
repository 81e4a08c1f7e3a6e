"""What the chain's earlier statements made of each table (column types, NOT NULL,
CHECK constraints): some statements are only safe given what is already there."""

from __future__ import annotations

from dataclasses import dataclass, field

from pglast import ast, enums

TypeKey = tuple[str, tuple[int, ...]]  # ("varchar", (255,)), ("text", ())


@dataclass
class Table:
    columns: dict[str, TypeKey | None] = field(default_factory=dict)
    not_null: set[str] = field(default_factory=set)
    # CHECK (col IS NOT NULL) constraints by name: (column, validated)
    null_checks: dict[str, tuple[str, bool]] = field(default_factory=dict)


def type_key(name: ast.TypeName | None) -> TypeKey | None:
    if name is None or not name.names:
        return None
    base = str(name.names[-1].sval).lower()
    mods: list[int] = []
    for mod in name.typmods or ():
        value = getattr(mod, "val", None)
        if not isinstance(value, ast.Integer):
            return None
        mods.append(int(value.ival or 0))
    return base, tuple(mods)


def null_test_column(expr: ast.Node | None) -> str | None:
    """The column of ``col IS NOT NULL``, the CHECK that lets SET NOT NULL skip its scan."""
    if not isinstance(expr, ast.NullTest) or expr.nulltesttype != enums.NullTestType.IS_NOT_NULL:
        return None
    ref = expr.arg
    if isinstance(ref, ast.ColumnRef) and ref.fields and len(ref.fields) == 1:
        return str(ref.fields[0].sval)
    return None


class Catalog:
    """Tables by name (schema left out: the chain's statements name them as they are)."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}

    def table(self, name: str) -> Table:
        return self.tables.setdefault(name, Table())

    def apply(self, node: ast.Node) -> None:
        if isinstance(node, ast.CreateStmt) and node.relation is not None:
            table = self.tables[str(node.relation.relname)] = Table()
            for element in node.tableElts or ():
                if isinstance(element, ast.ColumnDef):
                    self._column(table, element)
                elif isinstance(element, ast.Constraint):
                    self._constraint(table, element)
        elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
            table = self.table(str(node.relation.relname))
            for cmd in node.cmds or ():
                self._alter(table, cmd)
        elif isinstance(node, ast.RenameStmt) and node.relation is not None:
            old = str(node.relation.relname)
            if node.renameType == enums.ObjectType.OBJECT_TABLE:
                self.tables[str(node.newname)] = self.tables.pop(old, Table())
            elif node.renameType == enums.ObjectType.OBJECT_COLUMN:
                table = self.table(old)
                table.columns[str(node.newname)] = table.columns.pop(str(node.subname), None)
        elif isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_TABLE:
            for names in node.objects or ():
                self.tables.pop(str(names[-1].sval), None)

    def _column(self, table: Table, column: ast.ColumnDef) -> None:
        name = str(column.colname)
        table.columns[name] = type_key(column.typeName)
        for con in column.constraints or ():
            if con.contype in (enums.ConstrType.CONSTR_NOTNULL, enums.ConstrType.CONSTR_PRIMARY):
                table.not_null.add(name)

    def _constraint(self, table: Table, con: ast.Constraint) -> None:
        if con.contype == enums.ConstrType.CONSTR_CHECK:
            column = null_test_column(con.raw_expr)
            if column is not None and con.conname:
                table.null_checks[str(con.conname)] = (column, not con.skip_validation)
        elif con.contype == enums.ConstrType.CONSTR_PRIMARY:
            table.not_null.update(str(k.sval) for k in con.keys or ())

    def _alter(self, table: Table, cmd: ast.AlterTableCmd) -> None:
        kind = enums.AlterTableType
        if cmd.subtype == kind.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
            self._column(table, cmd.def_)
        elif cmd.subtype == kind.AT_AlterColumnType and isinstance(cmd.def_, ast.ColumnDef):
            table.columns[str(cmd.name)] = type_key(cmd.def_.typeName)
        elif cmd.subtype == kind.AT_DropColumn:
            table.columns.pop(str(cmd.name), None)
            table.not_null.discard(str(cmd.name))
        elif cmd.subtype == kind.AT_SetNotNull:
            table.not_null.add(str(cmd.name))
        elif cmd.subtype == kind.AT_DropNotNull:
            table.not_null.discard(str(cmd.name))
        elif cmd.subtype == kind.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
            self._constraint(table, cmd.def_)
        elif cmd.subtype == kind.AT_ValidateConstraint and cmd.name in table.null_checks:
            table.null_checks[str(cmd.name)] = (table.null_checks[str(cmd.name)][0], True)
        elif cmd.subtype == kind.AT_DropConstraint:
            table.null_checks.pop(str(cmd.name), None)
