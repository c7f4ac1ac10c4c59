"""Database roles of the warehouse, least privilege (DESIGN.md section 9).

Three NOLOGIN group roles; people and services log in as users that are members of them:

``dw_loader``       owns the raw schemas (raw_crm, raw_billing, raw_survey) and raw_meta:
                    creates and writes the raw tables, reads nothing else.
``dw_transformer``  reads raw and raw_meta (also tables the loader creates later), owns and
                    creates in staging, intermediate, seeds, the build schema, the published
                    schema and dw_meta (dbt, the quality gate, publish).
``dw_reporter``     for BI tools: USAGE on the published schema and SELECT on its tables
                    (including tables published later), nothing else.

Set up (idempotent; run as a superuser or a role with CREATEROLE that may grant on the
schemas), with WAREHOUSE_URL pointing at that admin user::

    python -m defection_warehouse.publish.roles setup

Then create the login users, one per job, with passwords from your secret store (``python
-m defection_warehouse.publish.roles login NAME --role dw_reporter --password-env VARIABLE``
does the first step for one user, reading the password from the environment)::

    create role airflow_loader login password '...' in role dw_loader;
    create role airflow_transformer login password '...' in role dw_transformer;
    create role bi_reader login password '...' in role dw_reporter;
    -- objects a session creates belong to its current role: make the writers' sessions
    -- act as the group role so the group owns what they create and the default
    -- privileges (loader -> transformer, transformer -> reporter) apply to it
    alter role airflow_loader set role dw_loader;
    alter role airflow_transformer set role dw_transformer;

A single pipeline user for the whole nightly DAG (one `warehouse` connection) is a member
of both writer roles: ``create role airflow_dw login password '...' in role dw_loader,
dw_transformer;``.

Publishing swaps the build and the published schema by renaming them, and privileges
follow a renamed schema. So dw_reporter's privileges are set up on the published schema
only (USAGE, SELECT on its tables, and default privileges for the tables dw_transformer
creates there later), and every publish sets them again after the swap: USAGE and SELECT
on the published schema, nothing on the build schema, and the default privileges moved
back to the published schema. Whatever the number of publishes, the reporter reads the
published schema and nothing in the build schema. Running setup again converges to the
same state.

Schemas that do not exist yet are created (owned by the role that writes them), so grants
can be given before the first run; existing schemas and the relations in them are handed
to that role. dw_transformer gets CREATE on the database because PostgreSQL requires it
to rename a schema (the publish swap); dw_loader does not. Code that runs ``create schema
if not exists`` as the loader needs the schema to exist already (PostgreSQL checks the
database privilege before it checks whether the schema exists).
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg
from psycopg import sql

from defection_warehouse.config import (
    INTERMEDIATE_SCHEMA,
    META_SCHEMA,
    RAW_META_SCHEMA,
    RAW_SCHEMAS,
    SEEDS_SCHEMA,
    STAGING_SCHEMA,
)
from defection_warehouse.db import one_row

LOADER_ROLE = "dw_loader"
TRANSFORMER_ROLE = "dw_transformer"
REPORTER_ROLE = "dw_reporter"
GROUP_ROLES = (LOADER_ROLE, TRANSFORMER_ROLE, REPORTER_ROLE)

TABLE_WRITE = sql.SQL("select, insert, update, delete, truncate")
# Relation kinds whose owner we set, with the keyword ALTER ... OWNER needs for each.
_OWNER_KEYWORD = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
                  "f": "foreign table", "S": "sequence"}


class _Admin:
    """Executes statements and records them for the caller to print."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.done: list[str] = []

    def run(self, stmt: sql.Composed | sql.SQL) -> None:
        self.conn.execute(stmt)
        self.done.append(stmt.as_string(self.conn))


def _ids(*names: str) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def loader_schemas() -> tuple[str, ...]:
    return (*RAW_SCHEMAS, RAW_META_SCHEMA)


def transformer_schemas(build_schema: str, publish_schema: str) -> tuple[str, ...]:
    return (STAGING_SCHEMA, INTERMEDIATE_SCHEMA, SEEDS_SCHEMA, build_schema, publish_schema,
            META_SCHEMA)


def _create_roles(admin: _Admin) -> None:
    for role in GROUP_ROLES:
        exists = admin.conn.execute("select 1 from pg_roles where rolname = %s",
                                    (role,)).fetchone()
        if exists:
            continue
        try:
            with admin.conn.transaction():
                admin.run(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
        except psycopg.errors.DuplicateObject:
            pass  # created meanwhile by a concurrent setup (roles are cluster-wide)


def _own_schema(admin: _Admin, schema: str, owner: str) -> None:
    """Create the schema for `owner`, or hand an existing one and its relations to it."""
    row = admin.conn.execute(
        "select pg_get_userbyid(nspowner) from pg_namespace where nspname = %s", (schema,)
    ).fetchone()
    if row is None:
        admin.run(sql.SQL("create schema {} authorization {}").format(
            sql.Identifier(schema), sql.Identifier(owner)))
        return
    if row[0] != owner:
        admin.run(sql.SQL("alter schema {} owner to {}").format(
            sql.Identifier(schema), sql.Identifier(owner)))
    # Sequences that belong to a column or identity follow their table.
    rows = admin.conn.execute(
        "select c.relname, c.relkind from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind = any(%s) "
        "and pg_get_userbyid(c.relowner) <> %s "
        "and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass "
        "  and d.objid = c.oid and d.deptype in ('a', 'i') and c.relkind = 'S') "
        "order by 1",
        (schema, list(_OWNER_KEYWORD), owner),
    ).fetchall()
    for name, kind in rows:
        admin.run(sql.SQL("alter {} {} owner to {}").format(
            sql.SQL(_OWNER_KEYWORD[kind]), sql.Identifier(schema, name), sql.Identifier(owner)))


def _grant_writer(admin: _Admin, schema: str, role: str) -> None:
    s, r = sql.Identifier(schema), sql.Identifier(role)
    admin.run(sql.SQL("grant usage, create on schema {} to {}").format(s, r))
    admin.run(sql.SQL("grant {} on all tables in schema {} to {}").format(TABLE_WRITE, s, r))
    admin.run(sql.SQL("grant usage, select, update on all sequences in schema {} to {}")
              .format(s, r))


def _grant_reader(admin: _Admin, schema: str, role: str, creator: str) -> None:
    """USAGE + SELECT now, and SELECT on the tables `creator` makes there later."""
    s, r = sql.Identifier(schema), sql.Identifier(role)
    admin.run(sql.SQL("grant usage on schema {} to {}").format(s, r))
    admin.run(sql.SQL("grant select on all tables in schema {} to {}").format(s, r))
    admin.run(sql.SQL("alter default privileges for role {} in schema {} "
                      "grant select on tables to {}").format(sql.Identifier(creator), s, r))


def _revoke_all(admin: _Admin, schema: str, role: str) -> None:
    """Take back anything granted earlier (setup converges to least privilege)."""
    s, r = sql.Identifier(schema), sql.Identifier(role)
    admin.run(sql.SQL("revoke all on schema {} from {}").format(s, r))
    admin.run(sql.SQL("revoke all on all tables in schema {} from {}").format(s, r))


def _revoke_defaults(admin: _Admin, schema: str, role: str, creator: str) -> None:
    """Take back the privileges `role` would get on tables `creator` makes in `schema`."""
    admin.run(sql.SQL("alter default privileges for role {} in schema {} "
                      "revoke all on tables from {}").format(
        sql.Identifier(creator), sql.Identifier(schema), sql.Identifier(role)))


def setup_roles(admin_url: str, *, build_schema: str, publish_schema: str) -> list[str]:
    """Create the group roles, schemas and grants (idempotent); returns the statements run."""
    raw = loader_schemas()
    built = transformer_schemas(build_schema, publish_schema)
    if len(set(raw + built)) != len(raw + built):
        raise ValueError(f"schemas overlap: {raw + built}")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        admin = _Admin(conn)
        _create_roles(admin)
        with conn.transaction():
            database = one_row(conn.execute("select current_database()"))[0]
            admin.run(sql.SQL("grant connect on database {} to {}").format(
                sql.Identifier(database), _ids(*GROUP_ROLES)))
            # Renaming a schema (the publish swap) needs CREATE on the database.
            admin.run(sql.SQL("grant create on database {} to {}").format(
                sql.Identifier(database), sql.Identifier(TRANSFORMER_ROLE)))
            if conn.execute("select 1 from pg_namespace where nspname = 'public'").fetchone():
                # Already so on PostgreSQL 15+; older servers let every role create there.
                admin.run(sql.SQL("revoke create on schema public from public"))
            for schema in raw:
                _own_schema(admin, schema, LOADER_ROLE)
                _grant_writer(admin, schema, LOADER_ROLE)
                _revoke_all(admin, schema, TRANSFORMER_ROLE)  # read only, see below
                _grant_reader(admin, schema, TRANSFORMER_ROLE, creator=LOADER_ROLE)
                _revoke_all(admin, schema, REPORTER_ROLE)
            for schema in built:
                _own_schema(admin, schema, TRANSFORMER_ROLE)
                _grant_writer(admin, schema, TRANSFORMER_ROLE)
                _revoke_all(admin, schema, LOADER_ROLE)
                _revoke_all(admin, schema, REPORTER_ROLE)
                if schema != publish_schema:
                    # Default privileges follow a renamed schema: after a publish swap the
                    # published schema's would be on the build schema unless publish moved
                    # them back. Converge: none for the reporter outside the published one.
                    _revoke_defaults(admin, schema, REPORTER_ROLE, creator=TRANSFORMER_ROLE)
            _grant_reader(admin, publish_schema, REPORTER_ROLE, creator=TRANSFORMER_ROLE)
        return admin.done


def ensure_login(admin_url: str, name: str, password: str, *, role: str) -> list[str]:
    """Create the login user `name` as a member of the group role `role`, or make an
    existing one a member and give it `password` (idempotent: the user converges to login,
    member, this password). Returns the statements run, the password left out."""
    if role not in GROUP_ROLES:
        raise ValueError(f"{role!r} is not one of the group roles {', '.join(GROUP_ROLES)}")
    if name in GROUP_ROLES:
        raise ValueError(f"{name!r} is a group role; name a user of its own")
    if not password:
        raise ValueError(f"login {name!r} needs a password")
    user, group = sql.Identifier(name), sql.Identifier(role)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is None:
            raise ValueError(f"group role {role} does not exist: run setup first")
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone()
        verb = "alter" if exists else "create"
        conn.execute(sql.SQL(verb + " role {} login password {}").format(
            user, sql.Literal(password)))
        done = [sql.SQL(verb + " role {} login password '...'").format(user).as_string(conn)]
        statement = sql.SQL("grant {} to {}").format(group, user)
        conn.execute(statement)
        done.append(statement.as_string(conn))
    return done


def main(argv: list[str] | None = None) -> int:
    from dotenv import load_dotenv

    from defection_warehouse.config import PROJECT_ROOT, Settings
    from defection_warehouse.db import warehouse_url

    load_dotenv(PROJECT_ROOT / ".env", override=False)  # the shell's values win
    parser = argparse.ArgumentParser(prog="python -m defection_warehouse.publish.roles",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup", help="create the group roles, schemas and grants in the "
                                         "WAREHOUSE_URL database (as an admin user)")
    setup.add_argument("--build-schema", help="default: DW_BUILD_SCHEMA or analytics_build")
    setup.add_argument("--publish-schema", help="default: DW_PUBLISH_SCHEMA or analytics")
    login = sub.add_parser("login", help="create a login user in a group role (or reset its "
                                         "password), e.g. the BI tool's user in dw_reporter")
    login.add_argument("name", help="the user's name")
    login.add_argument("--role", required=True, choices=GROUP_ROLES,
                       help="the group role it is a member of")
    login.add_argument("--password-env", required=True, metavar="VARIABLE",
                       help="environment variable holding its password (never the command "
                            "line, which other users of the machine can see)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        # progress to stderr: stdout is the SQL that was run
        url = warehouse_url(settings, progress=lambda m: print(m, file=sys.stderr))
        if args.command == "login":
            password = os.environ.get(args.password_env, "")
            if not password:
                print(f"set {args.password_env} to the password of {args.name}",
                      file=sys.stderr)
                return 2
            done = ensure_login(url, args.name, password, role=args.role)
            summary = f"-- {args.name} logs in as a member of {args.role}"
        else:
            done = setup_roles(url,
                               build_schema=args.build_schema or settings.build_schema,
                               publish_schema=args.publish_schema or settings.publish_schema)
            summary = f"-- roles {', '.join(GROUP_ROLES)} are set up"
    except psycopg.errors.InsufficientPrivilege as exc:
        print(f"permission denied: {exc}\nrun this as a superuser or a role with "
              "CREATEROLE that owns the warehouse schemas", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    for statement in done:
        print(statement + ";")
    print(summary, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
