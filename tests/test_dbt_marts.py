"""What every mart promises analysts, checked on the parsed project: a description for the
mart and each column, persisted to PostgreSQL as comments; an enforced contract; and a
data test that its key is unique and not null."""

from __future__ import annotations

import json
from pathlib import Path


def _marts(manifest: dict) -> dict[str, dict]:
    return {k: v for k, v in manifest["nodes"].items()
            if v["resource_type"] == "model"
            and v["original_file_path"].startswith("models/marts/")}


def test_marts_are_described_contracted_and_persist_their_docs(dbt_manifest: Path) -> None:
    marts = _marts(json.loads(dbt_manifest.read_text()))
    assert len(marts) >= 9
    problems = []
    for node in marts.values():
        name, config = node["name"], node["config"]
        if not node["description"].strip():
            problems.append(f"{name}: no description")
        problems += [f"{name}.{c}: no description"
                     for c, col in node["columns"].items() if not col["description"].strip()]
        if not config["contract"]["enforced"]:
            problems.append(f"{name}: contract not enforced")
        if config["persist_docs"] != {"relation": True, "columns": True}:
            problems.append(f"{name}: persist_docs is {config['persist_docs']}")
    assert problems == []


def test_every_mart_key_is_tested_unique_and_not_null(dbt_manifest: Path) -> None:
    manifest = json.loads(dbt_manifest.read_text())
    keyed = {node["attached_node"] for node in manifest["nodes"].values()
             if node["resource_type"] == "test"
             and (node.get("test_metadata") or {}).get("name") == "unique_and_not_null"}
    assert sorted(set(_marts(manifest)) - keyed) == []
