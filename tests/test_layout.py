"""The layout rules of STYLE.md, and that every deployment entrypoint loads."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "domainflow"

# The library's floors, lowest first: a package imports only from floors below its own (and within
# itself). The state lives on the ground floor; the CLI, which runs the flows, is the roof.
FLOORS = [
    {"redaction", "pii"},  # what a URL or message may show (never a password); personal data found and masked
    {"config", "settings", "hashing"},  # what everything is configured by
    {"store"},  # every state table, the database and its migrations, the audit log, the locks
    {"access"},  # API keys, their roles and domains, and their rate limits
    {"data", "evaluation"},  # sources, validation, splits, features; metrics, statistics, gates, reports
    {"calibration"},  # the maps from a model's scores to probabilities, and their diagrams
    {"models"},  # the network, its Lightning module, the baseline, the predictors of saved variants
    {"training", "optimization", "registry"},  # fitting; INT8/ONNX variants; MLflow, aliases, digests
    {"tuning", "serving", "retraining"},  # Optuna over training; the prediction server; retrain windows
    {"canary", "candidates"},  # the canary controller; candidates scored and gated
    {"monitoring", "tracking"},  # drift, quality, forecasts; what a training run logs
    {"summary", "progress", "terminal"},  # the outcomes a run reports; progress and tables for the terminal
    {"cli"},  # runs the flows
]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}

# Flows wire tasks and sub-flows. Beside those they may name the types of their parameters and results
# (datetime, the config, the outcomes) and the event names their triggers listen for; anything that
# computes belongs in a task.
FLOW_IMPORTS_ALLOWED = ("__future__", "datetime", "prefect", "domainflow.config", "domainflow.settings",
                        "domainflow.summary", "domainflow.monitoring.summary", "domainflow.monitoring.events",
                        "domainflow.tasks", "domainflow.flows")  # fmt: skip
# Tasks that wrap Prefect itself, not a library function: the reason each has no library namesake.
PREFECT_ONLY_TASKS = {
    "emit_domain_events": "emits Prefect events for deployment triggers",
    "train_domain": "runs the training flow where the task runner puts it (Prefect runs sub-flows side by side so)",
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
    return names


def _package(path: Path) -> str:
    """The floor unit of a library file: its top-level package, or its module at the top (cli, summary, ...)."""
    parts = path.relative_to(LIBRARY).with_suffix("").parts
    return parts[0]


def test_the_library_never_imports_prefect():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in LIBRARY.rglob("*.py")
        for name in _imports(path)
        if name == "prefect" or name.startswith("prefect.")
    ]
    assert offenders == []


def test_every_library_package_stands_on_a_floor():
    units = {_package(path) for path in LIBRARY.rglob("*.py")} - {"__init__"}
    assert units - set(FLOOR) == set(), "add the new package to FLOORS, above what it imports"


def test_imports_only_go_down_the_floors():
    upward = []
    for path in LIBRARY.rglob("*.py"):
        here = _package(path)
        if here == "__init__":
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "domainflow" or len(parts) < 2 or parts[1] == here:
                continue
            there = parts[1]
            # Only the roof runs flows (and their tasks).
            ok = here == "cli" if there in ("flows", "tasks") else FLOOR[there] < FLOOR[here]
            if not ok:
                where = path.relative_to(LIBRARY.parent)
                upward.append(f"{where} ({here}, floor {FLOOR.get(here)}) imports {name}")
    assert upward == []


def test_the_floor_check_catches_an_upward_import(tmp_path, monkeypatch):
    """Guards the test above: a store module importing serving must be reported."""
    fake = tmp_path / "domainflow"
    (fake / "store").mkdir(parents=True)
    (fake / "store" / "leak.py").write_text("from domainflow.serving.app import create_app\n")
    monkeypatch.setattr(sys.modules[__name__], "LIBRARY", fake)
    leak = r"domainflow/store/leak.py \(store, floor 2\) imports domainflow.serving.app"
    with pytest.raises(AssertionError, match=leak):
        test_imports_only_go_down_the_floors()


FLOW_FILES = sorted(path for path in (ROOT / "flows").glob("*.py") if path.name != "__init__.py")
# Not flows, but how flows run: prefect.yaml's deployments as objects, the settings of an in-process run,
# and the automation that sends monitoring's alerts to a webhook.
FLOW_RUNNING = ("deployments.py", "runs.py", "alerts.py")


@pytest.mark.parametrize("path", [p for p in FLOW_FILES if p.name != "runs.py"], ids=lambda p: p.name)
def test_flows_only_wire_tasks(path):
    disallowed = [name for name in _imports(path) if not name.startswith(FLOW_IMPORTS_ALLOWED)]
    assert disallowed == [], f"{path.name} imports {disallowed}: move that work into a task"


@pytest.mark.parametrize("path", [p for p in FLOW_FILES if p.name not in FLOW_RUNNING], ids=lambda p: p.name)
def test_one_flow_per_file_and_nothing_beside_it(path):
    tree = ast.parse(path.read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    flows = [f.name for f in functions if any("flow" in ast.unparse(d) for d in f.decorator_list)]
    assert len(flows) == 1, f"{path.name} defines the flows {flows}: one per file"
    assert [f.name for f in functions] == flows, f"{path.name}: helpers belong in the library or a task"
    assert path.stem not in ("helpers", "utils")


TASK_FILES = sorted(path for path in (ROOT / "tasks").glob("*.py") if path.name not in ("__init__.py", "policies.py"))


def _tasks(path: Path) -> list[ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d).startswith("task") for d in node.decorator_list)]  # fmt: skip


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: p.name)
def test_each_task_is_named_after_the_library_function_it_wraps(path):
    """One name per stage: the task `x` calls the library's `x` and adds only Prefect's concerns."""
    unnamed = []
    for task in _tasks(path):
        called = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                  for node in ast.walk(task) if isinstance(node, ast.Call)}  # fmt: skip
        if task.name not in called and task.name not in PREFECT_ONLY_TASKS:
            unnamed.append(task.name)
    assert unnamed == [], f"{path.name}: tasks that call no library function of their name: {unnamed}"


def test_no_function_takes_more_than_seven_positional_parameters():
    """Stages pass small frozen values (DomainData, TrainedCandidate, DomainModel), not long argument lists.

    Keyword-only options with defaults (a statistic's alpha, a check's thresholds) do not travel by position.
    """
    wide = []
    for path in [*LIBRARY.rglob("*.py"), *TASK_FILES, *FLOW_FILES]:
        if path.name == "cli.py":  # a command's options are its parameters (typer)
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                named = [a.arg for a in (*args.posonlyargs, *args.args)]
                count = len(named) - (named[:1] in (["self"], ["cls"]))
                if count > 7:
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count})")
    assert wide == []


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
