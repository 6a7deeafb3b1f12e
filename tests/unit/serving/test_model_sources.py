"""Where served models come from: numbered versions of the configured model, from the configured registry, verified.

A request, or a rollout row written by hand, cannot make the server fetch a URI, a path or
another model. None of these tests needs a registry: the HTTP ones are refused before the
server looks anything up, and the loader's download is replaced by a spy that records what
it was asked for.
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from mlflow.exceptions import MlflowException

from domainflow.registry.integrity import IntegrityError
from domainflow.serving import models
from domainflow.serving.app import create_app
from domainflow.serving.models import ModelCache, ModelRefresher
from domainflow.settings import Settings
from domainflow.store.database import open_database
from domainflow.store.rollouts import Arm, read_rollout, set_rollout

# Never contacted: the client is built lazily and every download goes to the spy.
REGISTRY = "http://admin:s3cret@127.0.0.1:9"
MALICIOUS_VERSIONS = ["../../x", "file:///etc/passwd", "runs:/abc/model", "models:/other-model/1",
                      "s3://bucket/model", "champion", "1/../2", "0"]  # fmt: skip


@pytest.fixture
def put_rollout(kit, tmp_path):
    """PUT /admin/rollouts/{domain} with the admin token, on the app without its lifespan (nothing loaded)."""
    settings = Settings(home=tmp_path, tracking_uri=REGISTRY, artifact_root=(tmp_path / "artifacts").as_uri(),
                        database_url=f"sqlite:///{tmp_path / 'serving.db'}", admin_token=kit.admin_token)  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(kit.config(), settings))
    headers = {"Authorization": f"Bearer {kit.admin_token}"}

    async def put(domain: str, change: dict) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://serving", headers=headers) as client:
            return await client.put(f"/admin/rollouts/{domain}", json=change)

    return lambda domain, change: anyio.run(put, domain, change)


def one_arm(version: str, **extra) -> dict:
    return {"arms": [{"variant": "champion", "version": version, "weight": 1.0}], "reason": "sneaky", **extra}


@pytest.mark.parametrize("version", MALICIOUS_VERSIONS)
def test_a_rollout_version_that_is_not_a_version_number_is_a_422_naming_it(put_rollout, version):
    response = put_rollout("EWR", one_arm(version))
    assert response.status_code == 422
    assert "arms.0.version: a version is the number of a registered version" in response.json()["message"]


@pytest.mark.parametrize("field", ["model_name", "model_uri", "tracking_uri"])
def test_a_rollout_cannot_name_its_own_model_or_registry(put_rollout, field):
    response = put_rollout("EWR", one_arm("1", **{field: "other-model"}))
    assert response.status_code == 422 and field in response.json()["message"]


def test_an_unconfigured_domain_is_a_404(put_rollout):
    response = put_rollout("other-model", one_arm("1"))
    assert response.status_code == 404 and "this server serves EWR" in response.json()["detail"]


@pytest.fixture
def downloads(monkeypatch) -> list[tuple[str, str, str]]:
    """(registry, name, version) of every verified download asked for; each is refused as unverified."""
    asked = []

    def spy(tracking_uri, name, version, destination):
        asked.append((tracking_uri, name, version))
        raise IntegrityError(f"{name} v{version}: spy")

    monkeypatch.setattr(models, "verified_model_folder", spy)
    return asked


@pytest.mark.parametrize("version", MALICIOUS_VERSIONS)
def test_the_loader_refuses_a_version_that_is_not_a_number_before_fetching(downloads, version):
    model, reason = ModelCache(REGISTRY).get("flight-delay-EWR", version)
    assert model is None and "is not a registered version number" in reason
    assert downloads == []


def test_the_loader_fetches_numbered_versions_from_the_configured_registry_through_the_digest_check(downloads):
    model, reason = ModelCache(REGISTRY).get("flight-delay-EWR", "3")
    assert model is None and reason == "flight-delay-EWR v3: spy"  # the integrity check's verdict stands
    assert downloads == [(REGISTRY, "flight-delay-EWR", "3")]


def test_a_load_failure_shown_to_clients_names_the_registry_without_its_password(monkeypatch):
    def unreachable(tracking_uri, name, version, destination):
        raise MlflowException(f"API request to {tracking_uri}/api/2.0/mlflow/model-versions/get failed")

    monkeypatch.setattr(models, "verified_model_folder", unreachable)
    _, reason = ModelCache(REGISTRY).get("flight-delay-EWR", "1")
    assert "admin:***@127.0.0.1:9" in reason and "s3cret" not in reason


@pytest.fixture
def refresher(kit, tmp_path, downloads):
    """The server's refresher over a real rollouts table; the `champion` alias of any model names v1."""
    engine = open_database(f"sqlite:///{tmp_path / 'serving.db'}")
    refresher = ModelRefresher(kit.config(), engine, ModelCache(REGISTRY))
    refresher.champion_version = lambda name: "1"
    return refresher


def test_a_rollout_naming_another_model_is_ignored_and_its_versions_never_fetched(refresher, downloads, kit):
    set_rollout(refresher.engine, "EWR", "other-model", [Arm("champion", "7", 1.0)], "by hand", "psql")

    table = refresher.refresh()["EWR"]
    assert {name for _, name, _ in downloads} == {kit.model}
    assert ("other-model", "7") not in {(name, version) for _, name, version in downloads}
    assert table.source == "champion alias" and table.model_name == kit.model
    assert "names model 'other-model', not the configured flight-delay-EWR" in table.problems[""]


def test_a_rollout_arm_with_a_uri_for_a_version_is_refused_and_the_rest_served(refresher, downloads, kit):
    arms = [Arm("champion", "1", 0.9), Arm("canary", "runs:/abc/model", 0.1)]  # written past the API's validation
    set_rollout(refresher.engine, "EWR", kit.model, arms, "by hand", "psql")
    assert read_rollout(refresher.engine, "EWR").version_of("canary") == "runs:/abc/model"

    table = refresher.refresh()["EWR"]
    assert [version for _, _, version in downloads] == ["1"]
    assert "'runs:/abc/model' is not a registered version number" in table.problems["canary"]
