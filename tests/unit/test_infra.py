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
import re
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
    assert {"postgres", "minio", "minio-init", "mlflow", "prefect", "worker", "serving"} <= set(services)
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
    written -= {"DOMAINFLOW_IMAGE"}  # the compose image tag, not a setting
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
    assert secrets == {"DOMAINFLOW_DATABASE_URL", "DOMAINFLOW_ADMIN_TOKEN"}
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


def test_every_image_is_pinned_to_a_tag():
    """`latest` (or no tag) changes under a running deployment; every image names its version."""
    images = [c["image"] for _, doc in _documents() for c in _containers(doc)]
    images += [service["image"] for service in _compose()["services"].values() if "image" in service]
    images.append(json.loads(BASE_JOB_TEMPLATE.read_text())["variables"]["properties"]["image"]["default"])
    for image in images:
        tag = image.rsplit("/", 1)[-1].partition(":")[2].rsplit("}", 1)[0]
        assert tag and tag != "latest" and not tag.endswith(":latest"), image
