"""The package installed away from the project (as in the Docker image) finds the project's
files through DW_PROJECT_DIR: the dbt project, the manifest the DAG renders from, the
expectations. Each case runs a fresh interpreter, since the paths are read at import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defection_warehouse.config import PROJECT_DIR_ENV, PROJECT_ROOT, project_root

PATHS = """
import json
import defection_warehouse
from defection_warehouse import config
from defection_warehouse.publish import swap
from defection_warehouse.quality import gate
from defection_warehouse.transform import cosmos_config, dbt_runner
print(json.dumps({
    "package": defection_warehouse.__file__,
    "project_root": str(config.PROJECT_ROOT),
    "dbt_dir": str(dbt_runner.DBT_DIR),
    "cosmos_dbt_dir": str(cosmos_config.DBT_DIR),
    "manifest": str(cosmos_config.manifest_path()),
    "publish_manifest": str(swap.MANIFEST),
    "expectations": str(gate.EXPECTATIONS_DIR),
    "suites": str(gate.suites_dir()),
    "data_dir": str(config.Settings.from_env().data_dir),
}))
"""


def test_project_dir_resolves_every_path_of_an_installed_package(
        installed_package, dbt_manifest: Path, tmp_path: Path) -> None:
    proc = installed_package.run(PATHS, project_dir=PROJECT_ROOT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    paths = json.loads(proc.stdout.strip().splitlines()[-1])
    # the package's own files are elsewhere ...
    assert Path(paths["package"]).is_relative_to(installed_package.site)
    assert not Path(paths["package"]).is_relative_to(PROJECT_ROOT)
    # ... and every path the DAG and the pipeline need is the project's
    dbt_dir = PROJECT_ROOT / "dbt_project"
    assert paths["project_root"] == str(PROJECT_ROOT)
    assert paths["dbt_dir"] == paths["cosmos_dbt_dir"] == str(dbt_dir)
    assert paths["manifest"] == paths["publish_manifest"] == str(dbt_manifest)
    assert paths["expectations"] == str(PROJECT_ROOT / "expectations")
    assert (dbt_dir / "dbt_project.yml").is_file()
    assert Path(paths["suites"]).is_dir() and any(Path(paths["suites"]).rglob("*.json"))
    assert paths["data_dir"] == str(PROJECT_ROOT / ".data")


def test_without_project_dir_an_installed_package_looks_in_site_packages(
        installed_package, tmp_path: Path) -> None:
    """Why the image sets DW_PROJECT_DIR: the package's own folder is not the project."""
    proc = installed_package.run(PATHS, project_dir=None, cwd=tmp_path)
    assert proc.returncode != 0
    assert "manifest.json is missing" in proc.stderr
    assert str(installed_package.site.parent / "dbt_project") in proc.stderr


def test_a_project_dir_that_is_not_the_project_is_refused(installed_package,
                                                           tmp_path: Path) -> None:
    proc = installed_package.run("import defection_warehouse.config", project_dir=tmp_path,
                                 cwd=tmp_path)
    assert proc.returncode != 0
    assert f"{PROJECT_DIR_ENV}='{tmp_path}' is not the project folder" in proc.stderr


def test_project_root_defaults_to_the_source_checkout() -> None:
    assert project_root({}) == project_root({PROJECT_DIR_ENV: " "}) == PROJECT_ROOT
    assert project_root({PROJECT_DIR_ENV: str(PROJECT_ROOT / "dags" / "..")}) == PROJECT_ROOT
    with pytest.raises(ValueError, match="is not the project folder"):
        project_root({PROJECT_DIR_ENV: str(PROJECT_ROOT / "dags")})
