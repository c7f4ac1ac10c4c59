"""The package reads like the DAG: one folder per stage, and no module imports from a stage
that comes after its own (or from the CLI and the pipeline on top)."""

from __future__ import annotations

import ast
from pathlib import Path

import defection_warehouse

PACKAGE = Path(defection_warehouse.__file__).parent
# Stages in the order a night runs them; the sample business stands beside them.
STAGES = ("sources", "load", "transform", "quality", "publish", "report", "sample")
# Shared by every stage; they import nothing but each other and the source contracts.
SHARED = {"config", "db", "embedded", "notify"}
TOP = {"cli", "pipeline", "dag_progress", "airflow_services", "__main__"}


def _layer(module: str) -> int:
    """0 for the shared modules, 1.. for the stages in order, len+1 for the top."""
    first = module.split(".")[0]
    if first in SHARED or first == "__init__":
        return 0
    if first in STAGES:
        return 1 + STAGES.index(first)
    assert first in TOP, f"{module}: not in a stage folder, the shared modules or the top"
    return len(STAGES) + 1


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "defection_warehouse":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("defection_warehouse."):
                found.add(node.module.removeprefix("defection_warehouse."))
            elif node.level:
                found.add(".".join(_module(path).split(".")[:-node.level] + [node.module]))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("defection_warehouse.") for a in node.names
                      if a.name.startswith("defection_warehouse.")}
    return found


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def test_every_module_imports_only_from_its_stage_or_earlier() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        for imported in _imports(path):
            if imported == "__version__":
                continue
            own, other = _layer(module), _layer(imported)
            shared_ok = other == 0 or (own == 0 and imported == "sources.contracts")
            if own == 0 and not shared_ok:
                wrong.append(f"{module} (shared) imports {imported}")
            elif own > 0 and other > own:
                wrong.append(f"{module} imports {imported}, a later stage")
    assert not wrong, "\n".join(wrong)


def test_stage_folders_exist() -> None:
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(STAGES)
