"""Quality gate: Great Expectations suites run as SQL in PostgreSQL before anything is
published.

- ``validate_raw`` judges the load batch of one logical date in every raw table (schema,
  keys, accepted values, amounts, volume against the load history, freshness).
- ``validate_build`` judges the marts dbt built into the build schema: the business
  checks (rate bounds, cause weights, attribution and KPI reconciliation, no missing
  month, as-of date, FX rates). Keys, relationships, contracts and accepted values of the
  marts are dbt's tests, not repeated here (expectations/README.md lists every check's
  home).

Both raise ``QualityGateFailed`` (a readable summary, the report attached) when a blocking
expectation fails; non-blocking failures become warnings. Each gate is one GX Checkpoint
(a ValidationDefinition per table, an UpdateDataDocsAction); its validation results go to
the GX project's results store (``expectations/gx``), its Data Docs pages to the project's
site (or DW_GX_DATA_DOCS_DIR), and one row per expectation result to
``dw_meta.gate_results``.

The suites are the committed JSON of the GX project, generated from quality_suites.py
(``python -m defection_warehouse.quality.gate write-suites``). The warehouse connection,
the run's suites, validation definitions and checkpoint live in an ephemeral GX context:
the URL never reaches a file.
Every metric is computed by PostgreSQL; only counts, aggregates and a few example rows
come back.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import statistics
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import great_expectations as gx
import psycopg
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.compatibility.typing_extensions import override
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.expectations.row_conditions import Column as RowColumn
from great_expectations.expectations.row_conditions import Condition
from psycopg import sql
from sqlalchemy import types as sa_types
from sqlalchemy.pool import NullPool

from defection_warehouse.config import (
    DATA_DOCS_ENV,
    EXPECTATIONS_DIR,
    META_SCHEMA,
    RAW_META_SCHEMA,
)
from defection_warehouse.db import one_row
from defection_warehouse.quality.suites import (
    MART_PREFIX,
    RAW_RULES,
    VolumeBand,
    all_suites,
    suite_json,
)
from defection_warehouse.sources.contracts import SOURCES, Entity, entities_for

log = logging.getLogger(__name__)

_SITE = "local_site"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
# First pass: counts only (a sample query with LIMIT 0 costs nothing); failures are then
# re-run with a few examples, so a clean night never pays for example queries.
_COUNTS_ONLY = {"result_format": "BASIC", "partial_unexpected_count": 0}
_WITH_EXAMPLES = {"result_format": "BASIC", "partial_unexpected_count": 5}
_EXAMPLES = 3
_EXAMPLE_ROWS = 2
# Freshness looks this far past its limit, so a stale table shows its newest change.
FRESHNESS_CONTEXT = timedelta(days=30)

RESULTS_TABLE = "gate_results"
RESULTS_DDL = """
create table {table} (
    run_id       text        not null,
    gate         text        not null,
    suite        text        not null,
    table_name   text        not null,
    batch        text        not null,
    expectation  text        not null,
    kwargs       jsonb       not null,
    check_name   text,
    success      boolean     not null,
    blocking     boolean     not null,
    observed     jsonb,
    message      text        not null,
    checked_at   timestamptz not null default now()
);
create index {run_index} on {table} (run_id);
create index {time_index} on {table} (checked_at);
"""
_RESULT_COLUMNS = ("run_id", "gate", "suite", "table_name", "batch", "expectation", "kwargs",
                   "check_name", "success", "blocking", "observed", "message", "checked_at")


class QualityGateFailed(RuntimeError):
    """A blocking expectation failed; the message is the readable summary."""

    def __init__(self, report: GateReport) -> None:
        super().__init__(report.summary())
        self.report = report


# ------------------------------------------------------------------------- options
@dataclass(frozen=True)
class GateOptions:
    """How a gate run stores its artifacts and which limits it applies."""

    # The GX project root (holds gx/great_expectations.yml and the suites).
    project_dir: Path = EXPECTATIONS_DIR
    # Where the Data Docs site goes; None: the project's uncommitted/data_docs/local_site.
    data_docs_dir: Path | None = None
    build_data_docs: bool = True
    # Append the results to dw_meta.gate_results (in results_url, default the warehouse).
    record_results: bool = True
    results_url: str | None = None
    # Per raw table overrides of the rules in quality_suites.RAW_RULES (None: not checked).
    freshness_limits: Mapping[str, timedelta | None] = field(default_factory=dict)
    volume_bands: Mapping[str, VolumeBand | None] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> GateOptions:
        docs = os.environ.get(DATA_DOCS_ENV)
        return cls(data_docs_dir=Path(docs) if docs else None)


# ------------------------------------------------------------------------- report
@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation result, ready to read."""

    suite: str
    table: str
    batch: str
    expectation: str
    kwargs: dict[str, Any]
    check: str
    success: bool
    blocking: bool
    observed: Any
    message: str


@dataclass
class GateReport:
    gate: str  # "raw" or "build"
    target: str  # the logical date, or the build schema and as-of date
    run_id: str
    success: bool
    results: list[ExpectationOutcome]
    warnings: list[str]
    data_docs: str | None
    seconds: float
    notes: list[str] = field(default_factory=list)  # checks skipped and why

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if r.blocking and not r.success]

    def summary(self) -> str:
        tables = len({r.table for r in self.results})
        state = "passed" if self.success else "FAILED"
        lines = [f"{self.gate} quality gate for {self.target} (run {self.run_id}) {state}: "
                 f"{len(self.results)} expectations on {tables} tables, "
                 f"{len(self.failures)} blocking failure(s), {len(self.warnings)} warning(s), "
                 f"{self.seconds:.1f}s"]
        if self.failures:
            lines.append("Blocking failures:")
            lines += [f"  - {r.message}" for r in self.failures]
        if self.warnings:
            lines.append("Warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in self.notes]
        if self.data_docs:
            lines.append(f"Data Docs: {self.data_docs}")
        return "\n".join(lines)


# ------------------------------------------------------------------------- public API
def validate_raw(warehouse_url: str, logical_date: date, *, run_id: str,
                 sources: Sequence[str] = SOURCES,
                 options: GateOptions | None = None) -> GateReport:
    """Validate the `logical_date` batch of every raw table of `sources`; raise
    QualityGateFailed when a blocking expectation fails."""
    options = options or GateOptions.from_env()
    started = time.monotonic()
    entities = [e for source in sources for e in entities_for(source)]
    history = _load_history(warehouse_url, logical_date, sources)
    targets, skipped = [], []
    for entity in entities:
        target, note = _raw_target(entity, logical_date, history.get(entity.raw_table, []),
                                   options)
        targets.append(target)
        skipped += note
    notes = [f"volume check skipped: {'; '.join(skipped)}"] if skipped else []
    return _run("raw", logical_date.isoformat(), warehouse_url, targets, notes, run_id,
                options, started, search_path=None)


def validate_build(warehouse_url: str, schema: str, as_of_date: date, *, run_id: str,
                   options: GateOptions | None = None) -> GateReport:
    """Validate the marts built in `schema` for `as_of_date`; raise QualityGateFailed when
    a blocking expectation fails."""
    options = options or GateOptions.from_env()
    if not _IDENT.match(schema):
        raise ValueError(f"build schema {schema!r} must be a lower-case SQL identifier")
    started = time.monotonic()
    params = {"as_of_date": as_of_date, "as_of_month": as_of_date.replace(day=1)}
    targets = [
        _Target(suite=s.name, schema=schema, table=s.name.removeprefix(MART_PREFIX),
                batch=f"as of {as_of_date.isoformat()}", parameters=params)
        for s in all_suites() if s.name.startswith(MART_PREFIX)
    ]
    return _run("build", f"{schema} as of {as_of_date.isoformat()}", warehouse_url, targets,
                [], run_id, options, started, search_path=schema)


# ------------------------------------------------------------------------- raw targets
@dataclass
class _Target:
    """One suite run: the table, the rows each expectation scope covers, parameters."""

    suite: str
    schema: str
    table: str
    batch: str
    parameters: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    skip_checks: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)  # check -> explanation

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    def parameter(self, name: str) -> str:
        """The name of a suite parameter of this batch in the checkpoint run."""
        return f"{re.sub(r'[^A-Za-z0-9]+', '_', self.suite)}__{name}"

    def run_parameters(self) -> dict[str, Any]:
        return {self.parameter(k): v for k, v in self.parameters.items()}


@dataclass(frozen=True)
class _Batch:
    logical_date: date
    rows: int
    is_first: bool


def _raw_target(entity: Entity, day: date, history: list[_Batch],
                options: GateOptions) -> tuple[_Target, list[str]]:
    rules = RAW_RULES[entity.raw_table]
    target = _Target(suite=entity.raw_table, schema=f"raw_{entity.source}", table=entity.name,
                     batch=f"batch {day.isoformat()}",
                     conditions={"batch": RowColumn("_logical_date") == _Day.of(day)})
    notes: list[str] = []
    band = options.volume_bands.get(entity.raw_table, rules.volume)
    if band is None:
        target.skip_checks.add("volume")
    else:
        note = _volume_parameters(entity, band, history, target)
        if note:
            notes.append(f"{entity.raw_table} {note}")
    limit = options.freshness_limits.get(
        entity.raw_table, rules.freshness.limit if rules.freshness else None)
    if limit is None or rules.freshness is None:
        target.skip_checks.add("freshness")
    else:
        _freshness_parameters(entity, day, limit, rules.freshness.column, target)
    return target, notes


def _volume_parameters(entity: Entity, band: VolumeBand, history: list[_Batch],
                       target: _Target) -> str | None:
    # The first batch of an incremental table is the full sync, far larger than a day.
    usable = [b for b in history if not (b.is_first and entity.mode == "incremental")]
    usable = sorted(usable, key=lambda b: b.logical_date)[-band.lookback:]
    median = statistics.median([b.rows for b in usable]) if usable else 0
    if len(usable) < band.min_history or median <= 0:
        target.skip_checks.add("volume")
        if len(usable) < band.min_history:
            return (f"too little history ({len(usable)} of the {band.min_history} previous "
                    f"batches it needs)")
        return f"the median of its {len(usable)} previous batches is 0 rows"
    low, high = int(band.low * median), int(-(-band.high * median // 1))
    target.parameters.update(volume_min=low, volume_max=high)
    target.notes["volume"] = (f"expected {low:,}..{high:,} rows: {band.low}x..{band.high}x "
                              f"the median {median:,.0f} of {len(usable)} previous batches")
    return None


def _freshness_parameters(entity: Entity, day: date, limit: timedelta, column: str,
                          target: _Target) -> None:
    end = datetime.combine(day + timedelta(days=1), dtime(0), tzinfo=UTC)
    cutoff = end - limit
    epoch = entity.column(column).type in ("bigint", "integer")
    target.parameters["fresh_after"] = int(cutoff.timestamp()) if epoch else cutoff.isoformat()
    # Rows changed after the cut-off are in batches from the day before it onwards.
    first = cutoff.date() - timedelta(days=1) - FRESHNESS_CONTEXT
    target.conditions["recent"] = ((RowColumn("_logical_date") >= _Day.of(min(first, day)))
                                   & (RowColumn("_logical_date") <= _Day.of(day)))
    shown = f"{cutoff:%Y-%m-%d %H:%M} UTC" + (f" (epoch {int(cutoff.timestamp())})"
                                              if epoch else "")
    target.notes["freshness"] = (f"newest {column} must be after {shown}, "
                                 f"{_hours(limit)} before the end of {day.isoformat()}")


class _Day(date):
    """A date in a row condition. A validation definition runs only a suite whose copy in
    the context's store is identical, and the store keeps a condition's date as its ISO
    string: this date equals that string, so the run keeps the date itself, which SQL
    compares as a date (a string would be bound as varchar: `date = varchar` fails)."""

    __sa_type_engine__ = sa_types.Date()

    @classmethod
    def of(cls, day: date) -> _Day:
        return cls(day.year, day.month, day.day)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.isoformat() == other
        return date.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = date.__hash__


def _hours(limit: timedelta) -> str:
    hours = limit.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours % 24 == 0 else f"{hours:g} hours"


def _load_history(url: str, day: date, sources: Sequence[str]) -> dict[str, list[_Batch]]:
    """Row counts of the latest successful load of every previous logical date."""
    query = sql.SQL("""
        with loads as (
            select source, entity, logical_date, load_id,
                   sum(rows_loaded) as rows_loaded, max(finished_at) as finished_at
            from {audit}
            where status <> 'failed' and source = any(%(sources)s)
            group by source, entity, logical_date, load_id
        ), latest as (
            select distinct on (source, entity, logical_date)
                   source, entity, logical_date, rows_loaded
            from loads order by source, entity, logical_date, finished_at desc
        )
        select source, entity, logical_date, rows_loaded,
               logical_date = min(logical_date) over (partition by source, entity)
        from latest
    """).format(audit=sql.Identifier(RAW_META_SCHEMA, "load_audit"))
    with psycopg.connect(url, application_name="defection_warehouse_gate") as conn:
        exists = one_row(conn.execute("select to_regclass(%s)",
                                      (f"{RAW_META_SCHEMA}.load_audit",)))[0]
        if exists is None:
            return {}
        rows = conn.execute(query, {"sources": list(sources)}).fetchall()
    out: dict[str, list[_Batch]] = {}
    for source, entity, logical_date, rows_loaded, is_first in rows:
        if logical_date < day:
            out.setdefault(f"raw_{source}.{entity}", []).append(
                _Batch(logical_date, int(rows_loaded), bool(is_first)))
    return out


# ------------------------------------------------------------------------- GX session
def _sqlalchemy_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"warehouse URL must be postgresql://..., got scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


class _Session:
    """An ephemeral GX context that runs one gate as a Checkpoint.

    The context holds the warehouse datasource, the run's suites (the project's committed
    suites with row conditions and parameter names of each batch), their validation
    definitions and the checkpoint in memory only; its validation results store and Data
    Docs site are the project's files, so every run is kept there and the site lists them
    all. Nothing about the connection is ever written."""

    def __init__(self, warehouse_url: str, options: GateOptions,
                 search_path: str | None) -> None:
        self.options = options
        self.project = gx.get_context(mode="file", project_root_dir=str(options.project_dir))
        self.runtime = gx.get_context(mode="ephemeral", project_config=_runtime_config(
            self.project, options))
        connect_args: dict[str, Any] = {"application_name": "defection_warehouse_gate"}
        if search_path:
            connect_args["options"] = f"-c search_path={search_path}"
        # The generic SQL datasource takes any libpq URL (also socket-only ones, which the
        # PostgreSQL datasource's DSN check refuses); the dialect is PostgreSQL either way.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="You are using a generic SQLDatasource")
            # NullPool: GX may build more than one engine per session; no pooled
            # connection may outlive the gate (it would block e.g. dropping the database).
            self.datasource = self.runtime.data_sources.add_sql(
                name="warehouse", connection_string=_sqlalchemy_url(warehouse_url),
                # kwargs is a field of GX's SQL datasource that its stub leaves out
                kwargs={"connect_args": connect_args, "poolclass": NullPool},  # type: ignore[call-arg]
            )

    def close(self) -> None:
        self.datasource.get_execution_engine().engine.dispose()

    def definition(self, target: _Target) -> gx.ValidationDefinition:
        """The validation definition of `target`: its table as a whole-table batch and the
        run's copy of its suite."""
        suite = _runtime_suite(self.project.suites.get(target.suite), target)
        self.runtime.suites.add(suite)
        asset = self.datasource.add_table_asset(target.suite, table_name=target.table,
                                                schema_name=target.schema)
        batch = asset.add_batch_definition_whole_table("whole_table")
        definition = gx.ValidationDefinition(name=target.suite, data=batch, suite=suite)
        self.runtime.validation_definitions.add(definition)
        return definition

    def checkpoint(self, gate: str, definitions: list[gx.ValidationDefinition]
                   ) -> gx.Checkpoint:
        actions: list[Any] = []
        if self.options.build_data_docs:
            actions.append(_UpdateDataDocs(name="update_data_docs", site_names=[_SITE]))
        checkpoint = gx.Checkpoint(name=f"{gate}_gate", validation_definitions=definitions,
                                   actions=actions, result_format=_COUNTS_ONLY)
        self.runtime.checkpoints.add(checkpoint)
        return checkpoint

    def with_examples(self, definition: gx.ValidationDefinition, result: Any,
                      parameters: dict[str, Any]) -> Any:
        failed = [r for r in result.results if not r.success and not _error(r)]
        if not failed:
            return result
        return _with_examples(definition.batch_definition.get_batch(), definition.suite,
                              result, parameters)

    def store(self, key: ValidationResultIdentifier, result: Any
              ) -> ValidationResultIdentifier:
        self.runtime.validation_results_store.store_validation_results(
            suite_validation_result=result, suite_validation_result_identifier=key)
        return key

    def build_docs(self, keys: list[ValidationResultIdentifier]) -> str | None:
        suites = {k.expectation_suite_identifier.name for k in keys}
        resources: list[Any] = [*keys, *(ExpectationSuiteIdentifier(name=s) for s in suites)]
        urls = self.runtime.build_data_docs(site_names=[_SITE], resource_identifiers=resources)
        return self.docs_index(urls.get(_SITE))

    def docs_index(self, url: str | None = None) -> str | None:
        if url is None:
            site = self.runtime.get_docs_sites_urls(site_name=_SITE)
            url = site[0]["site_url"] if site else None
        return url.removeprefix("file://") if url else None


class _UpdateDataDocs(UpdateDataDocsAction):
    """GX's UpdateDataDocsAction, building the pages of all the run's validation results
    and the index once: the stock action rebuilds the index once per validation result,
    which tripled the raw gate's time (18 suites)."""

    # GX tells actions apart by `type`; this one must not pass for the stock action
    type: Literal["update_data_docs_of_run"] = "update_data_docs_of_run"  # type: ignore[assignment]

    @override
    def run(self, checkpoint_result: Any, action_context: Any = None) -> dict:
        results = checkpoint_result.run_results
        suites = {r.suite_name for r in results.values()}
        self._build_data_docs(site_names=self.site_names, resource_identifiers=[
            *results, *(ExpectationSuiteIdentifier(name=s) for s in sorted(suites))])
        return {}


def _runtime_config(project: Any, options: GateOptions) -> DataContextConfig:
    """In-memory stores, except the validation results and the Data Docs site: the
    project's directories (or DW_GX_DATA_DOCS_DIR), as absolute paths."""
    gx_dir = Path(project.root_directory)
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = project.variables.stores
    results = copy.deepcopy(stores[project.variables.validation_results_store_name])
    backend = results["store_backend"]
    backend["base_directory"] = str(gx_dir / backend["base_directory"])
    defaults.stores[defaults.validation_results_store_name] = results
    sites = copy.deepcopy(project.variables.data_docs_sites)
    site = sites[_SITE]["store_backend"]
    site["base_directory"] = str(options.data_docs_dir if options.data_docs_dir is not None
                                 else gx_dir / site["base_directory"])
    return DataContextConfig(store_backend_defaults=defaults, data_docs_sites={_SITE: sites[_SITE]},
                             analytics_enabled=False,
                             progress_bars=ProgressBarsConfig(globally=False))


def _safe(text: str) -> str:
    """A file- and URL-safe name (Airflow run ids hold ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _runtime_suite(stored: gx.ExpectationSuite, target: _Target) -> gx.ExpectationSuite:
    """The stored suite with its row scopes turned into row conditions, minus skipped
    checks; an in-memory copy, never saved."""
    expectations = []
    for exp in stored.expectations:
        meta = exp.meta or {}
        if meta.get("check") in target.skip_checks:
            continue
        condition = target.conditions.get(meta.get("rows", "table"))
        extra = {"row_condition": condition} if condition is not None else {}
        # One checkpoint run takes one set of parameters: each batch's go by their own names.
        extra.update({k: {"$PARAMETER": target.parameter(v["$PARAMETER"])}
                      for k, v in exp.configuration.kwargs.items()
                      if isinstance(v, dict) and "$PARAMETER" in v})
        expectations.append(_copy(exp, **extra))
    return gx.ExpectationSuite(name=stored.name, expectations=expectations,
                               meta=dict(stored.meta), id=stored.id)


def _copy(exp: Any, **kwargs: Any) -> ExpectationConfiguration:
    """A detached copy of an expectation, id kept (a suite only takes expectations that
    belong to no other suite)."""
    cfg = exp.configuration
    return ExpectationConfiguration(
        type=cfg.type, kwargs={**cfg.kwargs, **kwargs}, meta=cfg.meta,
        description=cfg.description, severity=cfg.severity, id=cfg.id)


def _with_examples(batch: Any, suite: gx.ExpectationSuite, result: Any,
                   parameters: dict[str, Any]) -> Any:
    """Re-run the failed expectations to fetch example values (map expectations) or the
    offending rows (SQL checks), and put those results in place of the counts-only ones."""
    failed_ids = {r.expectation_config.id for r in result.results
                  if not r.success and not _error(r)}
    if not failed_ids:
        return result
    detailed: dict[str, Any] = {}
    failed = [_copy(e) for e in suite.expectations if e.id in failed_ids]
    for rows_check, result_format in ((True, "COMPLETE"), (False, _WITH_EXAMPLES)):
        part = [e for e in failed if (e.type == "unexpected_rows_expectation")
                == rows_check]
        if part:
            rerun = batch.validate(gx.ExpectationSuite(name=suite.name, expectations=part),
                                   result_format=result_format,
                                   expectation_parameters=parameters)
            detailed.update({r.expectation_config.id: r for r in rerun.results})
    result.results = [detailed.get(r.expectation_config.id, r) for r in result.results]
    return result


# ------------------------------------------------------------------------- running
def _run(gate: str, target_label: str, warehouse_url: str, targets: list[_Target],
         notes: list[str], run_id: str, options: GateOptions, started: float,
         search_path: str | None) -> GateReport:
    run_time = datetime.now(UTC)
    outcomes: dict[int, list[ExpectationOutcome]] = {}
    problems: list[str] = []  # artifacts that could not be written: reported, not fatal
    docs = None
    session = _Session(warehouse_url, options, search_path)
    try:
        runs: list[tuple[int, _Target, Any]] = []
        for i, target in enumerate(targets):
            try:
                runs.append((i, target, session.definition(target)))
            except Exception as exc:  # e.g. a missing table: the suite fails, readably
                log.debug("suite %s could not run", target.suite, exc_info=True)
                outcomes[i] = [_broken(target, exc)]
        if runs:
            docs = _run_checkpoint(session, gate, runs, run_id, run_time, outcomes,
                                   problems)
    finally:
        session.close()
    ordered = [o for i in sorted(outcomes) for o in outcomes[i]]
    warned = [o.message for o in ordered if not o.success and not o.blocking]
    report = GateReport(gate=gate, target=target_label, run_id=run_id,
                        success=not any(o.blocking and not o.success for o in ordered),
                        results=ordered, warnings=warned, data_docs=docs,
                        seconds=time.monotonic() - started, notes=notes)
    if options.record_results:
        _attempt(problems, f"record the results in {META_SCHEMA}.gate_results",
                 record_results, options.results_url or warehouse_url, report, run_time)
    report.warnings += problems
    log.info("%s", report.summary())
    if not report.success:
        raise QualityGateFailed(report)
    return report


def _run_checkpoint(session: _Session, gate: str, runs: list[tuple[int, _Target, Any]],
                    run_id: str, run_time: datetime,
                    outcomes: dict[int, list[ExpectationOutcome]],
                    problems: list[str]) -> str | None:
    """Run every validation definition through one Checkpoint (its UpdateDataDocsAction
    builds the Data Docs pages of the run); then fetch examples for the failures, store
    those results in place of the counts-only ones and rebuild their pages."""
    parameters = {k: v for _, target, _ in runs for k, v in target.run_parameters().items()}
    checkpoint = session.checkpoint(gate, [d for _, _, d in runs])
    run = RunIdentifier(run_name=_safe(run_id), run_time=run_time)
    try:
        result = checkpoint.run(expectation_parameters=parameters, run_id=run)
    except Exception as exc:  # a suite that cannot run stops the checkpoint: find which
        log.debug("checkpoint %s could not run", checkpoint.name, exc_info=True)
        problems.append(f"checkpoint {checkpoint.name} could not run ({type(exc).__name__}): "
                        "the suites ran one by one")
        return _run_one_by_one(session, runs, parameters, run, outcomes, problems)
    by_suite = {r.suite_name: (key, r) for key, r in result.run_results.items()}
    redone: list[ValidationResultIdentifier] = []
    for i, target, definition in runs:
        key, suite_result = by_suite[target.suite]
        detailed = _attempt(problems, f"fetch examples for {target.suite}",
                            session.with_examples, definition, suite_result, parameters)
        if detailed is not None and detailed is not suite_result:
            suite_result = detailed
            if _attempt(problems, f"store the results of {target.suite}", session.store,
                        key, suite_result) is not None:
                redone.append(key)
        outcomes[i] = [_outcome(r, target) for r in suite_result.results]
    docs = None
    if session.options.build_data_docs:
        if redone:
            docs = _attempt(problems, "build Data Docs", session.build_docs, redone)
        else:
            docs = _attempt(problems, "find the Data Docs", session.docs_index)
    return docs


def _run_one_by_one(session: _Session, runs: list[tuple[int, _Target, Any]],
                    parameters: dict[str, Any], run: RunIdentifier,
                    outcomes: dict[int, list[ExpectationOutcome]],
                    problems: list[str]) -> str | None:
    """Each validation definition on its own (it stores its result), so that a suite that
    cannot run fails alone, readably."""
    keys = []
    for i, target, definition in runs:
        try:
            result = definition.run(expectation_parameters=parameters, run_id=run,
                                    result_format=_COUNTS_ONLY)
        except Exception as exc:
            log.debug("suite %s could not run", target.suite, exc_info=True)
            outcomes[i] = [_broken(target, exc)]
            continue
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=target.suite),
            run_id=run, batch_identifier=result.batch_id)
        detailed = _attempt(problems, f"fetch examples for {target.suite}",
                            session.with_examples, definition, result, parameters)
        if detailed is not None and detailed is not result:
            result = detailed
            _attempt(problems, f"store the results of {target.suite}", session.store,
                     key, result)
        outcomes[i] = [_outcome(r, target) for r in result.results]
        keys.append(key)
    if session.options.build_data_docs and keys:
        return _attempt(problems, "build Data Docs", session.build_docs, keys)
    return None


def _attempt(problems: list[str], what: str, fn: Any, *args: Any) -> Any:
    """Run a bookkeeping step; a failure there must not hide the gate's verdict."""
    try:
        return fn(*args)
    except Exception as exc:  # reported as a warning of the run
        log.warning("quality gate could not %s", what, exc_info=True)
        problems.append(f"could not {what}: {type(exc).__name__}: {exc}")
        return None


def record_results(url: str, report: GateReport, checked_at: datetime) -> None:
    """Append one row per expectation result to dw_meta.gate_results."""
    rows = [(report.run_id, report.gate, o.suite, o.table, o.batch, o.expectation,
             json.dumps(o.kwargs, default=str), o.check, o.success, o.blocking,
             json.dumps(o.observed, default=str), o.message, checked_at)
            for o in report.results]
    table = sql.Identifier(META_SCHEMA, RESULTS_TABLE)
    insert = sql.SQL("insert into {} ({}) values ({})").format(
        table, sql.SQL(", ").join(map(sql.Identifier, _RESULT_COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder() * len(_RESULT_COLUMNS)))
    with psycopg.connect(url, application_name="defection_warehouse_gate") as conn:
        _ensure_results_table(conn, table)
        with conn.cursor() as cur:
            cur.executemany(insert, rows)


def _ensure_results_table(conn: psycopg.Connection, table: sql.Identifier) -> None:
    # Create only what is missing: `if not exists` still needs CREATE on the database (for
    # a schema) or table ownership (for an index), which a gate's role may lack.
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('defection_warehouse:ddl'))")
        found = one_row(conn.execute("select to_regclass(%s)",
                                     (f"{META_SCHEMA}.{RESULTS_TABLE}",)))[0]
        if found is not None:
            return
        if one_row(conn.execute("select to_regnamespace(%s)", (META_SCHEMA,)))[0] is None:
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(META_SCHEMA)))
        conn.execute(sql.SQL(RESULTS_DDL).format(
            table=table, run_index=sql.Identifier(f"{RESULTS_TABLE}__run"),
            time_index=sql.Identifier(f"{RESULTS_TABLE}__checked_at")))


# ------------------------------------------------------------------------- messages
_KEY_KWARGS = ("column", "column_list", "column_set", "exact_match", "value_set", "regex",
               "min_value", "max_value")


def _outcome(r: Any, target: _Target) -> ExpectationOutcome:
    cfg = r.expectation_config
    meta = cfg.meta or {}
    check = meta.get("check", "")
    blocking = str(getattr(cfg.severity, "value", cfg.severity)) == "critical"
    kwargs = {k: cfg.kwargs[k] for k in _KEY_KWARGS if k in cfg.kwargs}
    if cfg.type == "unexpected_rows_expectation":
        kwargs["query"] = cfg.kwargs.get("unexpected_rows_query")
    observed = _observed(r)
    batch = target.batch
    if meta.get("rows") == "recent" and "recent" in target.conditions:
        batch = _recent_label(target.conditions["recent"])
    message = (f"suite {target.suite}: {cfg.type}({_render_kwargs(cfg, kwargs)}) "
               f"{'passed' if r.success else 'failed'} on {target.qualified} ({batch}): "
               f"{_render_observed(observed)}")
    if check in target.notes:
        message += f" [{check}: {target.notes[check]}]"
    elif check:
        message += f" [{check}]"
    return ExpectationOutcome(suite=target.suite, table=target.qualified, batch=batch,
                              expectation=cfg.type, kwargs=_jsonable(kwargs), check=check,
                              success=bool(r.success), blocking=blocking,
                              observed=_jsonable(observed), message=message)


def _broken(target: _Target, exc: Exception) -> ExpectationOutcome:
    error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:500] if str(exc) else ''}"
    return ExpectationOutcome(
        suite=target.suite, table=target.qualified, batch=target.batch,
        expectation="suite", kwargs={}, check="error", success=False, blocking=True,
        observed={"error": error},
        message=f"suite {target.suite}: could not run on {target.qualified} "
                f"({target.batch}): {error}")


def _recent_label(condition: Condition) -> str:
    dates = sorted(str(c.parameter) for c in getattr(condition, "conditions", []))
    return f"batches {dates[0]}..{dates[-1]}" if len(dates) == 2 else "recent batches"


def _error(r: Any) -> str | None:
    info = r.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "error")
    for value in info.values():  # keyed by metric when a metric failed
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "error")
    return None


def _observed(r: Any) -> dict[str, Any]:
    error = _error(r)
    if error:
        return {"error": error.strip().splitlines()[0][:500]}
    res = r.result or {}
    if "unexpected_count" in res:
        # Nulls say nothing a not-null check's count does not already say.
        examples = list(dict.fromkeys(
            json.dumps(v, default=str) for v in res.get("partial_unexpected_list") or []
            if v is not None))
        return {"unexpected_count": res["unexpected_count"] or 0,
                "element_count": res.get("element_count") or 0,
                "examples": [json.loads(v) for v in examples[:_EXAMPLES]]}
    mismatched = (res.get("details") or {}).get("mismatched")
    if mismatched:
        return {"missing": mismatched.get("missing", []),
                "unexpected": mismatched.get("unexpected", [])}
    rows = (res.get("details") or {}).get("unexpected_rows")
    if r.expectation_config.type == "unexpected_rows_expectation":
        return {"unexpected_rows": res.get("observed_value"),
                "examples": list(rows or [])[:_EXAMPLE_ROWS]}
    return {"value": res.get("observed_value")}


def _render_observed(observed: dict[str, Any]) -> str:
    if "error" in observed:
        return f"error: {observed['error']}"
    if "unexpected_count" in observed:
        text = f"{observed['unexpected_count']:,} of {observed['element_count']:,} rows unexpected"
        if observed["examples"]:
            text += ", e.g. " + ", ".join(_value(v) for v in observed["examples"])
        return text
    if "missing" in observed:
        parts = [f"missing {', '.join(observed['missing'])}" if observed["missing"] else "",
                 f"unexpected {', '.join(observed['unexpected'])}"
                 if observed["unexpected"] else ""]
        return "columns " + "; ".join(p for p in parts if p)
    if "unexpected_rows" in observed:
        n = observed["unexpected_rows"] or 0
        text = f"{n:,} unexpected row{'s' if n != 1 else ''}"
        if observed["examples"]:
            text += ", e.g. " + "; ".join(_value(v) for v in observed["examples"])
        return text
    value = observed.get("value")
    if value is None:
        return "observed nothing (no rows)"
    return f"observed {value:,}" if isinstance(value, int) else f"observed {_value(value)}"


def _render_kwargs(cfg: Any, kwargs: dict[str, Any]) -> str:
    if cfg.type == "unexpected_rows_expectation":
        return cfg.description or "query"
    parts = []
    for key, value in kwargs.items():
        if key == "column":
            parts.append(str(value))
        elif key == "column_set":
            parts.append(f"column_set=<{len(value)} contract and load columns>")
        elif key in ("value_set", "column_list") and isinstance(value, list):
            shown = ", ".join(map(str, value[:6])) + (", ..." if len(value) > 6 else "")
            parts.append(f"{key}=[{shown}]")
        elif key == "regex":
            parts.append(f"regex={value[:40]}{'...' if len(value) > 40 else ''}")
        elif value is not None:
            parts.append(f"{key}={_value(value)}")
    return ", ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # GX stores bounds as floats: min_value=0, not 0.0
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_value))


# ------------------------------------------------------------------------- suite files
def suites_dir(project_dir: Path = EXPECTATIONS_DIR) -> Path:
    return project_dir / "gx" / "expectations"


def suite_path(name: str) -> str:
    """Where the GX expectations store keeps a suite: dots in the name are directories."""
    return "/".join(name.split(".")) + ".json"


def rendered_suites() -> dict[str, str]:
    """Relative file path -> JSON of every suite defined in quality_suites.py."""
    return {suite_path(s.name): suite_json(s) for s in all_suites()}


def _suite_files(project_dir: Path) -> dict[str, Path]:
    root = suites_dir(project_dir)
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*.json")}


def write_suites(project_dir: Path = EXPECTATIONS_DIR) -> list[str]:
    """Write the suites' JSON files and remove those of suites no longer defined."""
    root = suites_dir(project_dir)
    wanted = rendered_suites()
    for name, path in _suite_files(project_dir).items():
        if name not in wanted:
            path.unlink()
    for name, text in wanted.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return sorted(wanted)


def stale_suites(project_dir: Path = EXPECTATIONS_DIR) -> list[str]:
    """Suite files that differ from their definition, are missing, or are left over."""
    wanted = rendered_suites()
    on_disk = {name: path.read_text() for name, path in _suite_files(project_dir).items()}
    return sorted(name for name in set(wanted) | set(on_disk)
                  if wanted.get(name) != on_disk.get(name))


def main(argv: Iterable[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["write-suites"]:
        names = write_suites()
        print(f"wrote {len(names)} suites to {suites_dir()}")
        return 0
    if args == ["check-suites"]:
        stale = stale_suites()
        if stale:
            print("out of date (run `python -m defection_warehouse.quality.gate "
                  f"write-suites`): {', '.join(stale)}")
            return 1
        print("suites are up to date")
        return 0
    print("usage: python -m defection_warehouse.quality.gate write-suites|check-suites",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
