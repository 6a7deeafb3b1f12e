"""infra/ checked offline: compose against the Compose Specification, manifests against Kubernetes' schemas.

Neither docker nor a cluster is needed: the schemas ship inside check-jsonschema (compose-spec) and
kubernetes-validate (one strict schema set per Kubernetes minor). What the schemas cannot see is
checked by name: secrets only by reference, the variables compose needs, probes, the torchrun layout.
"""

from __future__ import annotations

import copy
import importlib.resources
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from domainflow.config import load_config

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
BASE_JOB_TEMPLATE = INFRA / "k8s" / "work-pool-base-job-template.json"
MANIFESTS = sorted((INFRA / "k8s").glob("*.yaml"))
# The oldest minor with every field used here (the Job controller's batch.kubernetes.io/job-name
# pod label arrived in 1.27), one current, and the newest kubernetes-validate bundles.
KUBERNETES_VERSIONS = ["1.27.0", "1.31.0", kubernetes_validate.latest_version()]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|AUTH_STRING")
# `${NAME}`, `${NAME:-default}`, `${NAME:?message}` and `$NAME`, but not the escaped `$${NAME}`.
INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _find(kind: str, name: str) -> dict:
    return next(doc for _, doc in _documents() if doc["kind"] == kind and doc["metadata"]["name"] == name)


def _containers(doc: dict) -> list[dict]:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    return pod.get("containers", []) + pod.get("initContainers", [])


def _env_example() -> dict[str, str]:
    lines = (INFRA / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


def _compose_schema() -> dict:
    vendored = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(vendored.read_text())


def _schema_errors(document: dict) -> list[str]:
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


# --- docker compose -------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification():
    assert _schema_errors(_compose()) == []


def test_the_compose_schema_rejects_a_misspelt_key():
    """Guards the check above: a schema that accepts anything would pass every file."""
    broken = _compose()
    broken["services"]["serving"]["depend_on"] = broken["services"]["serving"].pop("depends_on")
    assert any("depend_on" in error for error in _schema_errors(broken))


def test_compose_runs_the_production_stack():
    services = _compose()["services"]
    stack = {"postgres", "postgres-init", "minio", "minio-init", "mlflow", "prefect", "worker", "serving"}
    assert stack <= set(services)
    mlflow = services["mlflow"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert mlflow["environment"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "--serve-artifacts" in mlflow["command"]
    prefect_env = services["prefect"]["environment"]
    assert prefect_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert services["worker"]["command"] == ["worker", "start", "--pool", "domainflow", "--type", "process"]
    assert services["serving"]["command"][0] == "serve"
    for name in ("worker", "serving"):
        env = services[name]["environment"]
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["PREFECT_API_URL"] == "http://prefect:4200/api"
        assert env["DOMAINFLOW_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_compose_dependencies_wait_for_health_checks_that_exist():
    services = _compose()["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"


def test_every_compose_variable_is_documented_in_env_example():
    used = {a or b for a, b in INTERPOLATION.findall(COMPOSE.read_text())}
    missing = sorted(used - set(_env_example()))
    assert missing == [], f"add {missing} to infra/.env.example"


def test_env_example_holds_placeholders_not_secrets():
    for key, value in _env_example().items():
        if SECRET_NAME.search(key):
            assert "CHANGE-ME" in value, f"{key} in infra/.env.example must be a CHANGE-ME placeholder"


def test_compose_takes_every_secret_from_interpolation():
    """No literal credential: secret-named variables and URLs with a password come from ${...}."""
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if SECRET_NAME.search(key):
                assert value.startswith("${"), f"{name}.{key} must come from infra/.env"
            credentials = re.search(r"://([^/@\s]+)@", value)
            if credentials:
                assert ":${" in credentials.group(1), f"{name}.{key} writes a literal password into its URL"
    assert not re.search(r"(?im)^\s*(password|secret|token)\s*:\s*[^$\s]", COMPOSE.read_text())


def test_settings_variable_names_match_what_domainflow_reads():
    """A misspelt DOMAINFLOW_* name would be ignored silently; settings.py is the list of names."""
    read = set(re.findall(r'env\.get\("([A-Z_]+)"', (ROOT / "src" / "domainflow" / "settings.py").read_text()))
    read |= set(re.findall(r"\$(DOMAINFLOW_[A-Z_]+)", (ROOT / "prefect.yaml").read_text()))
    texts = [COMPOSE.read_text(), BASE_JOB_TEMPLATE.read_text(), *(path.read_text() for path in MANIFESTS)]
    written = {name for text in texts for name in re.findall(r"\b(DOMAINFLOW_[A-Z_]+)\b", text)}
    # The compose image tag and the serving role's password (postgres-init.sh's <ROLE>_DB_PASSWORD): not settings.
    written -= {"DOMAINFLOW_IMAGE", "DOMAINFLOW_DB_PASSWORD"}
    assert written - read == set()


def test_image_runs_as_a_user_and_bakes_in_no_secret():
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert re.search(r"(?m)^USER (?!root\b|0\b)\S+", dockerfile)
    assert re.search(r"(?m)^ARG TORCH_INDEX=https://download\.pytorch\.org/whl/cpu$", dockerfile)
    for line in re.findall(r"(?m)^(?:ENV|ARG)\b.*(?:\n\s+.*)*", dockerfile):
        assert not SECRET_NAME.search(line), f"secret-looking build setting: {line}"


# --- Kubernetes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifests_follow_the_kubernetes_schema(path, version):
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_kubernetes_validation_rejects_an_unknown_field():
    """Guards the check above against a schema set that ignores unknown fields."""
    serving = copy.deepcopy(_find("Deployment", "domainflow-serving"))
    serving["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(serving, KUBERNETES_VERSIONS[-1], strict=True)


def test_manifests_take_secrets_by_reference_only():
    for filename, doc in _documents():
        assert doc["kind"] != "Secret", f"{filename} ships a Secret: create it with kubectl (infra/README.md)"
        if doc["kind"] == "ConfigMap":
            assert not [key for key in doc["data"] if SECRET_NAME.search(key)], f"{filename}: secret in a ConfigMap"
        for container in _containers(doc):
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]) or variable["name"] == "DOMAINFLOW_DATABASE_URL":
                    assert "secretKeyRef" in variable.get("valueFrom", {}), f"{filename}: {variable['name']}"


def test_serving_probes_ready_and_health_on_its_port():
    container = _find("Deployment", "domainflow-serving")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["ports"][0]["containerPort"] == 8765
    service = _find("Service", "domainflow-serving")
    assert service["spec"]["ports"][0]["port"] == 8765


def test_prefect_worker_may_start_jobs_for_the_kubernetes_pool():
    worker = _find("Deployment", "prefect-worker")["spec"]["template"]["spec"]
    assert worker["containers"][0]["command"][-4:] == ["--pool", "domainflow-k8s", "--type", "kubernetes"]
    binding = _find("RoleBinding", worker["serviceAccountName"])
    assert binding["subjects"][0]["name"] == worker["serviceAccountName"]
    rules = _find("Role", binding["roleRef"]["name"])["rules"]
    assert any("jobs" in rule["resources"] and "create" in rule["verbs"] for rule in rules)
    assert any("pods" in rule["resources"] and "list" in rule["verbs"] for rule in rules)


def test_training_job_runs_torchrun_on_every_node():
    job = _find("Job", "domainflow-train")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    nodes, gpus = int(env["NNODES"]), int(env["GPUS"])
    script = " ".join(container["args"])

    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] == nodes
    assert script.split()[:2] == ["exec", "torchrun"]
    assert '--nnodes="$NNODES"' in script and '--nproc-per-node="$GPUS"' in script
    assert '--node-rank="$JOB_COMPLETION_INDEX"' in script
    assert "-m domainflow.cli train" in script and '--devices "$GPUS"' in script
    assert importlib.util.find_spec("domainflow.cli") is not None
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus

    # The rendezvous host is pod 0 under the headless Service that the pods' subdomain names.
    endpoint = re.search(r"--rdzv-endpoint=(\S+):29500", script).group(1)
    assert endpoint == f"{job['metadata']['name']}-0.{pod['subdomain']}"
    rendezvous = _find("Service", pod["subdomain"])
    assert rendezvous["spec"]["clusterIP"] == "None"
    assert rendezvous["spec"]["selector"] == {"batch.kubernetes.io/job-name": job["metadata"]["name"]}


def test_training_job_config_is_a_valid_domainflow_config(tmp_path):
    """The mounted YAML goes through the same loader as `domainflow train --config`."""
    job = _find("Job", "domainflow-train")
    container = job["spec"]["template"]["spec"]["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    config_map = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")["configMap"]
    data = _find("ConfigMap", config_map["name"])["data"]
    filename = re.search(rf"--config {re.escape(mount['mountPath'])}/(\S+)", " ".join(container["args"])).group(1)
    (tmp_path / filename).write_text(data[filename])

    training = load_config(tmp_path / filename).training
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert training.num_nodes == job["spec"]["parallelism"] == int(env["NNODES"])
    assert training.devices == int(env["GPUS"])
    assert (training.strategy, training.accelerator) == ("ddp", "gpu")


# --- the Kubernetes work pool ----------------------------------------------------------------------


def test_base_job_template_has_configuration_and_variables():
    template = json.loads(BASE_JOB_TEMPLATE.read_text())
    assert {"job_configuration", "variables"} <= set(template)
    assert template["job_configuration"]["job_manifest"]["kind"] == "Job"
    jsonschema.validators.validator_for(template["variables"]).check_schema(template["variables"])


@pytest.mark.parametrize("gpus", [None, 2])
def test_base_job_template_renders_a_valid_job(gpus):
    """Rendered as the worker does (Prefect's templating, variable defaults), the Job passes Kubernetes' schema."""
    from prefect.utilities.templating import apply_values

    template = json.loads(BASE_JOB_TEMPLATE.read_text())
    properties = template["variables"]["properties"]
    values = {name: spec["default"] for name, spec in properties.items() if spec.get("default") is not None}
    values |= {"name": "flow-run", "command": "prefect flow-run execute"}
    if gpus is not None:
        values["gpu_limit"] = gpus
    manifest = apply_values(copy.deepcopy(template["job_configuration"]), values)["job_manifest"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    # prefect-kubernetes turns these two into the Kubernetes forms before it submits the Job.
    # (The template's env is a list of secret references: the worker prepends its own env to it.)
    container["env"] = [{"name": "PREFECT_API_URL", "value": "http://prefect:4200/api"}, *container["env"]]
    container["args"] = container["args"].split()

    kubernetes_validate.validate(manifest, KUBERNETES_VERSIONS[-1], strict=True)
    assert manifest["metadata"]["namespace"] == "domainflow"
    assert container["resources"].get("limits", {}).get("nvidia.com/gpu") == gpus
    # Each secret a flow run needs, by key; never the whole Secret (the admin token is the server's alone).
    assert not [source for source in container["envFrom"] if "secretRef" in source]
    referenced = {v["name"] for v in container["env"] if "secretKeyRef" in v.get("valueFrom", {})}
    assert referenced == {"DOMAINFLOW_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert not [key for key in properties["env"].get("default", {}) if SECRET_NAME.search(key)]
    assert container["resources"]["limits"]["memory"] == "8Gi"  # a runaway run is killed, not its node
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_internet_facing_server_gets_only_what_it_needs_and_can_change_nothing_in_its_image():
    """Issue 18: it had S3 keys it does not need (models come through MLflow), all capabilities, a writable root."""
    pod = _find("Deployment", "domainflow-serving")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    secrets = {v["name"] for v in container.get("env", []) if "secretKeyRef" in v.get("valueFrom", {})}
    assert secrets == {"DOMAINFLOW_DATABASE_URL", "DOMAINFLOW_ADMIN_TOKEN", "DOMAINFLOW_REDIS_URL"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/data", "/tmp"}
    # Longer than the shutdown: the refresher's join and the prediction log's flush (30 s each).
    assert pod["terminationGracePeriodSeconds"] > 60
    policy = _find("NetworkPolicy", "domainflow-serving")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "domainflow-serving"}
    assert policy["policyTypes"] == ["Ingress"] and policy["ingress"][0]["from"]


def test_the_compose_prediction_server_gets_no_s3_keys_and_the_worker_does():
    services = _compose()["services"]
    assert not [key for key in services["serving"]["environment"] if key.startswith("AWS_")]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(services["worker"]["environment"])


# --- one role per database, one MinIO user per service (issue 18) -------------------------------------------

# The servers themselves and the one-shot jobs that create the roles and users: nobody else holds the
# PostgreSQL superuser or the MinIO root keys.
ADMIN_HOLDERS = {"postgres", "postgres-init", "minio", "minio-init"}
ADMIN_VARIABLES = re.compile(r"\bPOSTGRES_(?:USER|PASSWORD)\b|\bMINIO_ROOT_\w+")
# Each service's database URL: (role, the variable holding its password, database).
DATABASE_URL = re.compile(r"^postgresql\+\w+://(\w+):\$\{(\w+):\?[^}]*\}@postgres:5432/(\w+)$")
DATABASE_URLS = {
    "mlflow": "MLFLOW_BACKEND_STORE_URI",
    "prefect": "PREFECT_API_DATABASE_CONNECTION_URL",
    "worker": "DOMAINFLOW_DATABASE_URL",
    "serving": "DOMAINFLOW_DATABASE_URL",
}


def _environment(service: str) -> dict[str, str]:
    return {key: str(value) for key, value in (_compose()["services"][service].get("environment") or {}).items()}


def test_only_the_servers_and_their_init_jobs_hold_the_postgres_superuser_or_the_minio_root_keys():
    for name, service in _compose()["services"].items():
        if name in ADMIN_HOLDERS:
            continue
        text = yaml.safe_dump(service.get("environment") or {})
        assert not ADMIN_VARIABLES.search(text), f"{name} gets {ADMIN_VARIABLES.search(text).group(0)}"


def test_each_service_connects_to_its_own_database_as_the_role_that_owns_it():
    roles = {}
    for service, variable in DATABASE_URLS.items():
        match = DATABASE_URL.match(_environment(service)[variable])
        assert match, f"{service}.{variable} is not postgresql://ROLE:${{PASSWORD}}@postgres:5432/DATABASE"
        role, password, database = match.groups()
        assert role == database and password == f"{role.upper()}_DB_PASSWORD", f"{service} connects as {role}"
        roles[service] = role
    assert roles == {"mlflow": "mlflow", "prefect": "prefect", "worker": "domainflow", "serving": "domainflow"}


def test_postgres_init_creates_every_role_a_service_connects_as():
    services = _compose()["services"]
    job = services["postgres-init"]
    assert job["entrypoint"] == ["/bin/sh", "/postgres-init.sh"]
    assert "./postgres-init.sh:/postgres-init.sh:ro" in job["volumes"]
    assert job["depends_on"]["postgres"]["condition"] == "service_healthy"
    created = re.search(r'databases="\$\{\*:-([a-z ]+)\}"', (INFRA / "postgres-init.sh").read_text()).group(1).split()
    used = {DATABASE_URL.match(_environment(s)[v]).group(1) for s, v in DATABASE_URLS.items()} | {"optuna"}
    assert set(created) == used
    assert {f"{role.upper()}_DB_PASSWORD" for role in created} <= set(_environment("postgres-init"))
    assert _environment("postgres-init")["PGUSER"].startswith("${POSTGRES_USER:?")
    # Every service with a database URL waits until its role exists.
    for name in ("mlflow", "prefect", "worker", "serving"):
        assert services[name]["depends_on"]["postgres-init"]["condition"] == "service_completed_successfully", name
    # The superuser of an older .env.example was called `domainflow`: the script refuses to demote a superuser.
    assert _env_example()["POSTGRES_USER"] not in created


def test_each_service_with_s3_access_has_its_own_minio_user_and_the_server_none():
    mlflow, worker, serving = _environment("mlflow"), _environment("worker"), _environment("serving")
    assert (mlflow["AWS_ACCESS_KEY_ID"], mlflow["AWS_SECRET_ACCESS_KEY"]) == (
        "${MINIO_MLFLOW_USER:?set it in infra/.env}", "${MINIO_MLFLOW_PASSWORD:?set it in infra/.env}")  # fmt: skip
    assert (worker["AWS_ACCESS_KEY_ID"], worker["AWS_SECRET_ACCESS_KEY"]) == (
        "${MINIO_WORKER_USER:?set it in infra/.env}", "${MINIO_WORKER_PASSWORD:?set it in infra/.env}")  # fmt: skip
    assert not [key for key in serving if key.startswith("AWS_")]
    job = _environment("minio-init")
    assert {"MINIO_MLFLOW_USER", "MINIO_MLFLOW_PASSWORD", "MINIO_WORKER_USER", "MINIO_WORKER_PASSWORD"} <= set(job)
    assert _compose()["services"]["minio-init"]["entrypoint"] == ["/bin/sh", "/minio-init.sh"]


FAKE_MC = """#!/bin/sh
# Records each call; `admin policy create` keeps the policy file; `entities` answers from the attached list.
echo "$*" >> "$MC_LOG"
case "$1 $2 $3" in
    "admin policy create") cp "$6" "$MC_DIR/$5.json" ;;
    "admin policy entities") cat "$MC_DIR/attached-$6" 2>/dev/null || true ;;
    "admin policy attach") echo "$5" >> "$MC_DIR/attached-$7" ;;
esac
"""
MINIO_ENV = {
    "MINIO_ROOT_USER": "root", "MINIO_ROOT_PASSWORD": "root-secret-123", "S3_BUCKET": "art",
    "MINIO_MLFLOW_USER": "mlf", "MINIO_MLFLOW_PASSWORD": "mlflow-secret-123",
    "MINIO_WORKER_USER": "wrk", "MINIO_WORKER_PASSWORD": "worker-secret-123",
}  # fmt: skip


def _run_minio_init(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mc").write_text(FAKE_MC)
    (bin_dir / "mc").chmod(0o755)
    (tmp_path / "mc").mkdir(exist_ok=True)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "MC_LOG": str(tmp_path / "calls"), "MC_DIR": str(tmp_path / "mc"),
           "TMPDIR": str(tmp_path), **MINIO_ENV, **overrides}  # fmt: skip
    return subprocess.run(["sh", str(INFRA / "minio-init.sh")], env=env, capture_output=True, text=True, timeout=30)


def _granted(policy: dict) -> dict[str, set[str]]:
    """Resource -> actions the policy allows on it."""
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            granted.setdefault(resource, set()).update(statement["Action"])
    return granted


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_minio_init_gives_each_service_a_user_limited_to_its_prefix_of_the_bucket(tmp_path):
    result = _run_minio_init(tmp_path)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[:2] == ["alias set local http://minio:9000 root root-secret-123", "mb --ignore-existing local/art"]
    assert "admin user add local mlf mlflow-secret-123" in calls
    assert "admin user add local wrk worker-secret-123" in calls
    assert "admin policy attach local domainflow-mlflow --user mlf" in calls
    assert "admin policy attach local domainflow-worker --user wrk" in calls

    mlflow = _granted(json.loads((tmp_path / "mc" / "domainflow-mlflow.json").read_text()))
    assert set(mlflow) == {"arn:aws:s3:::art", "arn:aws:s3:::art/mlflow/*"}
    assert {"s3:PutObject", "s3:DeleteObject"} <= mlflow["arn:aws:s3:::art/mlflow/*"]
    worker = _granted(json.loads((tmp_path / "mc" / "domainflow-worker.json").read_text()))
    assert set(worker) == {"arn:aws:s3:::art", "arn:aws:s3:::art/*", "arn:aws:s3:::art/outputs/*"}
    assert worker["arn:aws:s3:::art/*"] == {"s3:GetObject"}  # reads every source, writes outputs/ only
    assert "s3:PutObject" in worker["arn:aws:s3:::art/outputs/*"]
    for policy in (mlflow, worker):
        assert not [action for actions in policy.values() for action in actions if action.startswith("s3:*")
                    or action.startswith("admin:") or "Bucket" in action and "List" not in action
                    and action != "s3:GetBucketLocation"]  # fmt: skip

    # Run again (every `up`): the policies and secrets are set again, nothing attached twice (which mc refuses).
    again = _run_minio_init(tmp_path)
    assert again.returncode == 0, again.stderr
    attaches = [c for c in (tmp_path / "calls").read_text().splitlines() if c.startswith("admin policy attach")]
    assert len(attaches) == 2


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_minio_init_refuses_a_placeholder_before_it_changes_anything(tmp_path):
    placeholder = _env_example()["MINIO_WORKER_PASSWORD"]
    result = _run_minio_init(tmp_path, MINIO_WORKER_PASSWORD=placeholder)
    assert result.returncode != 0
    assert "MINIO_WORKER_PASSWORD is still the placeholder" in result.stderr and placeholder not in result.stderr
    assert not (tmp_path / "calls").exists()


def test_no_pod_references_the_database_superuser_or_the_minio_root_keys():
    """Kubernetes: MLflow, Prefect and the database are installed apart; each pod takes only its own keys."""
    texts = [BASE_JOB_TEMPLATE.read_text(), *(path.read_text() for path in MANIFESTS)]
    assert not [found for text in texts for found in ADMIN_VARIABLES.findall(text)]
    assert not [found for text in texts for found in re.findall(r"key: (\w+)", text) if "ROOT" in found]


def test_every_image_is_pinned_to_a_tag():
    """`latest` (or no tag) changes under a running deployment; every image names its version."""
    images = [c["image"] for _, doc in _documents() for c in _containers(doc)]
    images += [service["image"] for service in _compose()["services"].values() if "image" in service]
    images.append(json.loads(BASE_JOB_TEMPLATE.read_text())["variables"]["properties"]["image"]["default"])
    for image in images:
        tag = image.rsplit("/", 1)[-1].partition(":")[2].rsplit("}", 1)[0]
        assert tag and tag != "latest" and not tag.endswith(":latest"), image
