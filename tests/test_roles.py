"""Database roles: each group role can do its job and nothing else (least privilege)."""

from __future__ import annotations

import ast
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from defection_warehouse.db import one_row
from defection_warehouse.publish import roles
from defection_warehouse.publish.swap import ensure_build_schema, publish

BUILD, PUB = "analytics_build", "analytics"
# One table per schema, created by the admin before the roles exist.
TABLES = ("raw_crm.accounts", "raw_billing.invoices", "raw_survey.responses",
          "raw_meta.load_audit", "staging.stg_accounts", "intermediate.int_mrr",
          "seeds.cancel_reasons", f"{BUILD}.fct_defections", f"{PUB}.kpi_retention_monthly",
          "dw_meta.gate_results")
NOT_FOR_REPORTER = [t for t in TABLES if not t.startswith(f"{PUB}.")]


def as_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def ident(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split("."))


@pytest.fixture
def warehouse(warehouse_url: str) -> str:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for table in TABLES:
            schema = table.split(".")[0]
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("create table {} (id int primary key, note text)")
                         .format(ident(table)))
            conn.execute(sql.SQL("insert into {} values (1, 'before setup')").format(ident(table)))
    return warehouse_url


@pytest.fixture
def login_user(warehouse: str) -> Iterator[Callable[..., str]]:
    """Makes temporary LOGIN members of a group role (cluster-wide: dropped afterwards)."""
    created: list[str] = []

    def make(group: str, *, act_as_group: bool = False) -> str:
        name = f"dwtest_{group}_{uuid.uuid4().hex[:8]}"
        password = secrets.token_hex(12)
        with psycopg.connect(warehouse, autocommit=True) as conn:
            conn.execute(sql.SQL("create role {} login password {} in role {}").format(
                sql.Identifier(name), sql.Literal(password), sql.Identifier(group)))
            created.append(name)
            if act_as_group:  # the recipe from the roles module's docstring
                conn.execute(sql.SQL("alter role {} set role {}").format(
                    sql.Identifier(name), sql.Identifier(group)))
        return as_user(warehouse, name, password)

    yield make
    with psycopg.connect(warehouse, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def setup(url: str) -> list[str]:
    return roles.setup_roles(url, build_schema=BUILD, publish_schema=PUB)


def can(url: str, statement: str) -> bool:
    """Whether `statement` runs (rolled back either way); False on permission denied."""
    with psycopg.connect(url) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return False
        finally:
            conn.rollback()
    return True


def test_setup_is_idempotent_and_creates_missing_schemas(warehouse_url: str) -> None:
    first = setup(warehouse_url)  # a fresh database: no schema exists yet
    second = setup(warehouse_url)
    assert any(s.startswith("grant connect on database") for s in first)
    assert not any(s.startswith(("create role", "create schema", "alter table")) for s in second)
    with psycopg.connect(warehouse_url) as conn:
        owners = dict(conn.execute(
            "select nspname, pg_get_userbyid(nspowner) from pg_namespace "
            "where nspname = any(%s)", (list(roles.loader_schemas() + roles.transformer_schemas(
                BUILD, PUB)),)).fetchall())
        logins = conn.execute("select rolname from pg_roles where rolname = any(%s) "
                              "and not rolcanlogin", (list(roles.GROUP_ROLES),)).fetchall()
    assert {s: o for s, o in owners.items() if s.startswith("raw_")} == {
        "raw_crm": "dw_loader", "raw_billing": "dw_loader", "raw_survey": "dw_loader",
        "raw_meta": "dw_loader"}
    assert owners[PUB] == owners[BUILD] == owners["dw_meta"] == "dw_transformer"
    assert len(logins) == 3


def test_reporter_reads_the_published_schema_only(warehouse: str, login_user) -> None:
    setup(warehouse)
    setup(warehouse)
    reporter = login_user("dw_reporter")
    assert can(reporter, f"select * from {PUB}.kpi_retention_monthly")
    for table in NOT_FOR_REPORTER:
        assert not can(reporter, f"select * from {table}"), f"reporter can read {table}"
    assert not can(reporter, f"create table {PUB}.mine (id int)")
    assert not can(reporter, f"insert into {PUB}.kpi_retention_monthly values (2, 'x')")
    with psycopg.connect(warehouse) as conn:
        usage = dict(conn.execute(
            "select nspname, has_schema_privilege('dw_reporter', nspname, 'USAGE') "
            "from pg_namespace where nspname = any(%s)",
            ([t.split(".")[0] for t in TABLES],)).fetchall())
    assert usage == {**{t.split(".")[0]: False for t in NOT_FOR_REPORTER}, PUB: True}


def reporter_view(admin_url: str) -> dict[str, object]:
    """What dw_reporter may use in the build and the published schema, from the catalog."""
    with psycopg.connect(admin_url) as conn:
        usage = dict(conn.execute(
            "select nspname, has_schema_privilege('dw_reporter', oid, 'USAGE') "
            "from pg_namespace where nspname in (%s, %s)", (BUILD, PUB)).fetchall())
        tables = conn.execute(
            "select n.nspname, c.relname, has_table_privilege('dw_reporter', c.oid, 'SELECT') "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname in (%s, %s) and c.relkind = 'r' order by 1, 2",
            (BUILD, PUB)).fetchall()
        defaults = conn.execute(
            "select n.nspname from pg_default_acl d join pg_namespace n "
            "on n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a "
            "where a.grantee = 'dw_reporter'::regrole order by 1").fetchall()
    return {"usage": usage, "tables": tables, "defaults": [d[0] for d in defaults]}


def test_tables_published_or_created_after_setup_are_readable(warehouse: str,
                                                              login_user) -> None:
    """After any number of publishes (each swaps the two schemas, and privileges follow a
    renamed schema) the reporter reads exactly the published schema, including tables
    created there later, and nothing of the build schema, including tables that dbt
    creates there after a swap."""
    setup(warehouse)
    reporter = login_user("dw_reporter")
    transformer = login_user("dw_transformer", act_as_group=True)
    with psycopg.connect(transformer, autocommit=True) as conn:
        conn.execute(f"create table {PUB}.made_here as select 1 as id")
    assert can(reporter, f"select * from {PUB}.made_here")  # default privileges
    for night in range(1, 4):
        ensure_build_schema(transformer, BUILD)
        with psycopg.connect(transformer, autocommit=True) as conn:  # dbt, as the transformer
            conn.execute(f"drop table if exists {BUILD}.kpi_retention_monthly, "
                         f"{BUILD}.dim_customers")
            conn.execute(f"create table {BUILD}.kpi_retention_monthly as "
                         f"select {night} as id, 'published later' as note")
            conn.execute(f"create table {BUILD}.dim_customers as select {night} as id")
        view = reporter_view(warehouse)
        assert view["usage"] == {BUILD: False, PUB: True}, view
        assert not [t for t in view["tables"] if t[0] == BUILD and t[2]], view
        assert view["defaults"] == [PUB], view
        assert not can(reporter, f"select * from {BUILD}.kpi_retention_monthly")

        result = publish(transformer, build_schema=BUILD, publish_schema=PUB,
                         run_id=f"r{night}", as_of_date=date(2026, 10, night),
                         tables=["kpi_retention_monthly", "dim_customers"])
        assert result.row_counts == {"dim_customers": 1, "kpi_retention_monthly": 1}
        for table in ("kpi_retention_monthly", "dim_customers", "kpi_history"):
            assert can(reporter, f"select * from {PUB}.{table}"), table
        with psycopg.connect(reporter) as conn:
            assert conn.execute(f"select id, note from {PUB}.kpi_retention_monthly"
                                ).fetchall() == [(night, "published later")]
        view = reporter_view(warehouse)
        assert view["usage"] == {BUILD: False, PUB: True}, view
        assert all(t[2] for t in view["tables"] if t[0] == PUB), view
        assert not [t for t in view["tables"] if t[0] == BUILD and t[2]], view
        assert view["defaults"] == [PUB], view
        for table in ("kpi_retention_monthly", "dim_customers"):  # the previous generation
            assert not can(reporter, f"select * from {BUILD}.{table}"), table
        # A table the transformer creates in the published schema later is readable.
        with psycopg.connect(transformer, autocommit=True) as conn:
            conn.execute(f"create table {PUB}.made_later_{night} as select 1 as id")
        assert can(reporter, f"select * from {PUB}.made_later_{night}")
    # Running setup again after publishes converges to the same privileges.
    setup(warehouse)
    assert reporter_view(warehouse)["defaults"] == [PUB]
    assert reporter_view(warehouse)["usage"] == {BUILD: False, PUB: True}
    assert not can(reporter, "select * from dw_meta.publish_log")


def test_loader_writes_raw_and_reads_nothing_else(warehouse: str, login_user) -> None:
    setup(warehouse)
    loader = login_user("dw_loader", act_as_group=True)
    with psycopg.connect(loader, autocommit=True) as conn:
        conn.execute("insert into raw_crm.accounts values (2, 'loaded')")
        conn.execute("delete from raw_billing.invoices where id = 1")
        conn.execute("create table raw_survey.new_export (id int)")
        conn.execute("insert into raw_meta.load_audit values (2, 'audit')")
        owner = one_row(conn.execute("select tableowner from pg_tables where schemaname = "
                                     "'raw_survey' and tablename = 'new_export'"))[0]
    assert owner == "dw_loader"
    for table in TABLES:
        if not table.startswith("raw_"):
            assert not can(loader, f"select * from {table}"), f"loader can read {table}"
    assert not can(loader, "create table staging.mine (id int)")


def test_transformer_reads_raw_builds_marts_and_cannot_write_raw(warehouse: str,
                                                                  login_user) -> None:
    setup(warehouse)
    loader = login_user("dw_loader", act_as_group=True)
    transformer = login_user("dw_transformer", act_as_group=True)
    with psycopg.connect(loader, autocommit=True) as conn:
        conn.execute("create table raw_crm.created_later as select 1 as id")
    for table in ("raw_crm.accounts", "raw_meta.load_audit", "raw_crm.created_later"):
        assert can(transformer, f"select * from {table}"), table
    for schema in ("staging", "intermediate", "seeds", BUILD, PUB, "dw_meta"):
        assert can(transformer, f"create table {schema}.t_new (id int)"), schema
    assert can(transformer, "drop table seeds.cancel_reasons")  # dbt replaces what it owns
    assert not can(transformer, "insert into raw_crm.accounts values (3, 'no')")
    assert not can(transformer, "create table raw_crm.mine (id int)")
    assert not can(transformer, "truncate raw_meta.load_audit")


def test_command_line_setup(warehouse_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    assert roles.main(["setup", "--build-schema", BUILD, "--publish-schema", PUB]) == 0
    out = capsys.readouterr().out
    assert "grant usage on schema \"analytics\" to \"dw_reporter\";" in out


def test_no_module_imports_the_command_line() -> None:
    """The command line sits on top of the package: roles once took the warehouse URL
    from it, and the CLI imports the pipeline, which imports publish, which imports roles
    (an import cycle). Only `python -m defection_warehouse` may import it."""
    package = Path(roles.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.parent == package and path.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            if "defection_warehouse.cli" in names:
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert offenders == []


def password_hash(admin_url: str, role: str) -> str | None:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("select rolpassword from pg_authid where rolname = %s and rolcanlogin",
                           (role,)).fetchone()
    return row[0] if row else None


def test_login_for_the_bi_tool_reads_as_the_reporter(warehouse: str, monkeypatch,
                                                     capsys) -> None:
    """docker-compose.yml's init makes the BI tool's login a member of dw_reporter, with
    the password from the environment; running it again resets the password."""
    setup(warehouse)
    name = f"dwtest_bi_{uuid.uuid4().hex[:8]}"
    first, second = secrets.token_hex(12), secrets.token_hex(12)
    monkeypatch.setenv("WAREHOUSE_URL", warehouse)
    try:
        monkeypatch.setenv("DWTEST_BI_PASSWORD", first)
        assert roles.main(["login", name, "--role", "dw_reporter",
                           "--password-env", "DWTEST_BI_PASSWORD"]) == 0
        out = capsys.readouterr().out
        assert first not in out and f'grant "dw_reporter" to "{name}";' in out
        bi = as_user(warehouse, name, first)
        assert can(bi, f"select * from {PUB}.kpi_retention_monthly")
        for table in NOT_FOR_REPORTER:
            assert not can(bi, f"select * from {table}"), f"the BI login can read {table}"

        hashed = password_hash(warehouse, name)
        monkeypatch.setenv("DWTEST_BI_PASSWORD", second)
        assert roles.main(["login", name, "--role", "dw_reporter",
                           "--password-env", "DWTEST_BI_PASSWORD"]) == 0
        assert can(as_user(warehouse, name, second), f"select * from {PUB}.kpi_retention_monthly")
        assert hashed is not None
        assert password_hash(warehouse, name) not in (None, hashed)  # the new password

        monkeypatch.delenv("DWTEST_BI_PASSWORD")
        assert roles.main(["login", name, "--role", "dw_reporter",
                           "--password-env", "DWTEST_BI_PASSWORD"]) == 2
        with pytest.raises(ValueError, match="group role"):
            roles.ensure_login(warehouse, "dw_reporter", first, role="dw_reporter")
    finally:
        with psycopg.connect(warehouse, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))
