"""A nightly build loads a seed again only when its files changed since it was last
loaded into this warehouse (or its table is gone, or the build is a full refresh), and
leaves out the data tests that read nothing but such unchanged seeds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg

from defection_warehouse.dbt_runner import DBT_DIR, nightly_build, nightly_selection, run_dbt
from defection_warehouse.seed_state import FINGERPRINT_TABLE, fingerprint, unchanged_seed_nodes

SEEDS_ONLY = ["--select", "resource_type:seed", "--indirect-selection", "cautious", "--quiet"]


def _seed_names() -> set[str]:
    manifest = json.loads((DBT_DIR / "target" / "manifest.json").read_text())
    return {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "seed"}


def _ran(result: object) -> tuple[set[str], set[str]]:
    """(seeds, data tests) a build ran."""
    results = result.results  # type: ignore[attr-defined]
    return ({r.node.name for r in results if r.node.resource_type == "seed"},
            {r.node.name for r in results if r.node.resource_type == "test"})


def test_a_night_loads_only_the_seeds_that_changed(warehouse_url: str) -> None:
    seeds = _seed_names()
    assert len(seeds) >= 5

    loaded, tests = _ran(nightly_build(warehouse_url, select=SEEDS_ONLY))
    assert loaded == seeds
    assert "unique_and_not_null_cause_taxonomy_cause_id" in tests
    skipped = set(unchanged_seed_nodes(warehouse_url, DBT_DIR))
    assert seeds | tests <= skipped

    # the same files: nothing to load and nothing to test again
    assert _ran(nightly_build(warehouse_url, select=SEEDS_ONLY)) == (set(), set())
    # ... while a whole night still runs every test that also reads a model, as do the
    # DAG's dbt_base (staging, intermediate) and its mart tasks
    for select in ([], ["--select", "resource_type:seed", "staging", "intermediate",
                        "--indirect-selection", "buildable"]):
        listed = set(run_dbt(["ls", "--resource-type", "test", "--resource-type", "seed",
                              "--output", "name", "--quiet",
                              *nightly_selection(warehouse_url, select)], warehouse_url))
        # an intermediate model and a seed
        assert {"assert_stated_reason_codes_are_mapped",
                "relationships_int_attribution__evidence_cause_id__cause_id__ref_cause_taxonomy_"
                } <= listed
        assert not listed & seeds
        assert "unique_and_not_null_cause_taxonomy_cause_id" not in listed
        if not select:
            assert "relationships_fct_defection_causes_cause_id__cause_id__ref_cause_taxonomy_" \
                in listed

    # a changed file (its fingerprint no longer matches) and a dropped table
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute(f"update seeds.{FINGERPRINT_TABLE} set fingerprint = 'changed' "
                     "where seed_name = 'signal_rules'")
        conn.execute("drop table seeds.plan_catalog")
    loaded, tests = _ran(nightly_build(warehouse_url, select=SEEDS_ONLY))
    assert loaded == {"signal_rules", "plan_catalog"}
    assert {"unique_and_not_null_signal_rules_signal_id",
            "unique_and_not_null_plan_catalog_price_id",
            # reads a changed and an unchanged seed
            "relationships_signal_rules_cause_id__cause_id__ref_cause_taxonomy_"} <= tests
    assert "unique_and_not_null_cause_taxonomy_cause_id" not in tests
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("select count(*) from seeds.plan_catalog").fetchone()[0] > 0

    # a full refresh loads every seed whatever its fingerprint
    loaded, _ = _ran(nightly_build(warehouse_url, select=SEEDS_ONLY, full_refresh=True))
    assert loaded == seeds


def test_the_fingerprint_follows_the_csv_and_its_configuration(tmp_path: Path) -> None:
    shutil.copytree(DBT_DIR / "seeds", tmp_path / "seeds")
    shutil.copy(DBT_DIR / "dbt_project.yml", tmp_path / "dbt_project.yml")
    seed = {"original_file_path": "seeds/signal_rules.csv"}
    other = {"original_file_path": "seeds/cause_taxonomy.csv"}
    first, first_other = fingerprint(tmp_path, seed), fingerprint(tmp_path, other)
    assert first == fingerprint(DBT_DIR, seed)

    csv = tmp_path / "seeds" / "signal_rules.csv"
    csv.write_text(csv.read_text().replace("\n", "\r\n", 1))
    assert fingerprint(tmp_path, seed) != first
    assert fingerprint(tmp_path, other) == first_other

    steps = []
    for path in (tmp_path / "seeds" / "_seeds.yml", tmp_path / "dbt_project.yml"):
        path.write_text(path.read_text() + "\n# edited\n")
        steps.append(fingerprint(tmp_path, other))
    assert len({first_other, *steps}) == 3
