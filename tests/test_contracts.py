"""The contract doc is generated from the code, and the contracts are well formed."""

from __future__ import annotations

from pathlib import Path

from defection_warehouse.sources.contracts import (
    ENTITIES,
    LOAD_COLUMNS,
    SOURCES,
    dbt_sources_path,
    to_dbt_sources,
    to_markdown,
)

DOC = Path(__file__).parents[1] / "docs" / "source_contracts.md"


def test_contract_doc_is_up_to_date() -> None:
    assert DOC.read_text() == to_markdown(), "run `make contracts-doc`"
    for source in SOURCES:
        path = Path(__file__).parents[1] / dbt_sources_path(source)
        assert path.read_text() == to_dbt_sources(source), "run `make contracts-doc`"


def test_every_entity_has_keys_descriptions_and_billing_paths() -> None:
    seen = set()
    for e in ENTITIES:
        assert e.raw_table not in seen
        seen.add(e.raw_table)
        names = e.column_names
        assert len(names) == len(set(names)), e.raw_table
        assert set(e.primary_key) <= set(names), e.raw_table
        assert not set(names) & {n for n, _, _ in LOAD_COLUMNS}, e.raw_table
        for c in e.columns:
            assert c.description, f"{e.raw_table}.{c.name}"
            assert (c.path is not None) == (e.source == "billing"), f"{e.raw_table}.{c.name}"
            if c.name in e.primary_key:
                assert not c.nullable
