"""The layout rules of STYLE.md, and that every deployment entrypoint loads."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Flows may name types for their parameters and results (datetime, the summaries) and the event names their
# triggers listen for; anything that computes belongs in a task.
FLOW_IMPORTS_ALLOWED = ("__future__", "datetime", "prefect", "domainflow.config", "domainflow.settings",
                        "domainflow.summary", "domainflow.monitoring.summary", "domainflow.monitoring.events",
                        "domainflow.tasks", "domainflow.flows")  # fmt: skip


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
    return names


def test_the_library_never_imports_prefect():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "src" / "domainflow").rglob("*.py")
        for name in _imports(path)
        if name == "prefect" or name.startswith("prefect.")
    ]
    assert offenders == []


@pytest.mark.parametrize("path", sorted((ROOT / "flows").glob("*.py")), ids=lambda p: p.name)
def test_flows_only_wire_tasks(path):
    disallowed = [name for name in _imports(path) if not name.startswith(FLOW_IMPORTS_ALLOWED)]
    assert disallowed == [], f"{path.name} imports {disallowed}: move that work into a task"


def _deployments():
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", _deployments(), ids=lambda d: d["name"])
def test_prefect_yaml_entrypoints_load_and_take_their_parameters(deployment, monkeypatch):
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(ROOT)
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    flow.validate_parameters(deployment.get("parameters") or {})
    assert flow.parameters.properties["config"]


@pytest.mark.parametrize("env", ["local", "production"])
def test_served_deployments_carry_each_environment_config(env):
    spec = importlib.util.spec_from_file_location("serve", ROOT / "deployments" / "serve.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)

    config = serve.environment_config(env)
    deployments = serve.build_deployments(config)

    # The same deployments as prefect.yaml's, for a laptop with no work pool.
    assert {d.name for d in deployments} == {d["name"] for d in _deployments()}
    for deployment in deployments:
        assert deployment.parameters["config"]["training"]["max_epochs"] == config.training.max_epochs
        assert deployment.parameters["config"]["canary"] == config.canary.model_dump(mode="json")


def test_every_library_package_is_installed(tmp_path):
    """The wheel holds every package on disk: the build finds them (setup.py), nobody lists them by hand."""
    import shutil
    import subprocess
    import sys
    import zipfile

    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("src", "flows", "tasks"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(tmp_path)], check=True, capture_output=True)  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("domainflow-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        inits = [Path(name).parent for name in archive.namelist() if name.endswith("__init__.py")]
    built = {".".join(folder.parts) for folder in inits}
    source = ROOT / "src"
    on_disk = {".".join(init.parent.relative_to(source).parts) for init in (source / "domainflow").rglob("__init__.py")}
    on_disk |= {"domainflow.flows", "domainflow.tasks"}
    assert on_disk - built == set()
    assert "domainflow.store" in built
