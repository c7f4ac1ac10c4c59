"""dbt layering: sources only in staging, and no layer reads a later one.

The DAG builds seeds, staging and intermediate models before the marts, so an
intermediate model that read a mart would fail on a fresh warehouse.
"""

from __future__ import annotations

import json
from pathlib import Path

LAYERS = {"staging": 0, "intermediate": 1, "marts": 2}


def _layer(node: dict) -> int | None:
    path = node.get("original_file_path", "")
    for name, rank in LAYERS.items():
        if path.startswith(f"models/{name}/"):
            return rank
    return None


def test_models_read_only_earlier_layers_and_sources_only_in_staging(
        dbt_manifest: Path) -> None:
    manifest = json.loads(dbt_manifest.read_text())
    nodes = manifest["nodes"]
    models = {k: v for k, v in nodes.items() if v["resource_type"] == "model"}
    assert len(models) >= 30
    problems = []
    for key, node in models.items():
        rank = _layer(node)
        assert rank is not None, f"{key} is outside staging/intermediate/marts"
        for dep in node["depends_on"]["nodes"]:
            if dep.startswith("source.") and rank != LAYERS["staging"]:
                problems.append(f"{node['name']} reads {dep} outside staging")
            if dep.startswith("model."):
                dep_rank = _layer(nodes[dep])
                if dep_rank is not None and dep_rank > rank:
                    problems.append(f"{node['name']} reads the later-layer model {dep}")
    assert problems == []
