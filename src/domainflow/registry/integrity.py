"""A model version's artifact digest: recorded at registration, checked before a server loads the version.

MLflow keeps no checksum of a logged model's files, so a file changed in the artifact
store after registration would be served silently. The digest covers every file of the
model folder (relative path and bytes), in a stable order.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import mlflow.artifacts
from mlflow import MlflowClient

from domainflow.registry.mlflow_registry import (
    TAG,
    LoggedRun,
    fluent_tracking_uri,
    register_logged_model,
    registered_again,
    version_of_run,
)
from domainflow.store.audit import AuditTrail

DIGEST_TAG = f"{TAG}artifact_sha256"


class IntegrityError(RuntimeError):
    """A model version's files do not match the digest recorded when it was registered."""


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def download_model(tracking_uri: str, model_uri: str, destination: Path) -> Path:
    """The model folder behind `model_uri` (models:/name/version or models:/id), copied to `destination`."""
    with fluent_tracking_uri(tracking_uri):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(destination)))


def record_version_digest(tracking_uri: str, name: str, version: str) -> str:
    """Digest the registered version's files and tag the version with it."""
    with tempfile.TemporaryDirectory() as scratch:
        digest = folder_digest(download_model(tracking_uri, f"models:/{name}/{version}", Path(scratch)))
    MlflowClient(tracking_uri).set_model_version_tag(name, version, DIGEST_TAG, digest)
    return digest


def register_model_version(
    tracking_uri: str,
    name: str,
    logged: LoggedRun,
    tags: dict[str, str],
    description: str = "",
    *,
    audit: AuditTrail | None = None,
) -> str:
    """The run's model registered under `name` (register_logged_model), with the digest a server checks before
    it serves the version.

    With `audit`, a new version is a `registration` row; the version of the same run found again is none.
    """
    client = MlflowClient(tracking_uri)
    existing = version_of_run(client, name, logged.run_id) if audit is not None else None
    version = register_logged_model(tracking_uri, name, logged, tags, description)
    digest = client.get_model_version(name, version).tags.get(DIGEST_TAG)
    if not digest:
        digest = record_version_digest(tracking_uri, name, version)
    if audit is not None and existing is None:
        again = registered_again(tracking_uri, name, version)
        reason = f"{again}: registered again from its run" if again else f"registered from run {logged.run_id}"
        after = {"model": name, "run_id": logged.run_id, "family": tags.get(f"{TAG}family"), "artifact_sha256": digest}
        audit.record("registration", f"v{version}", None, after, reason)
    return version


def verified_model_folder(tracking_uri: str, name: str, version: str, destination: Path) -> Path:
    """Download a version and return its folder only if its digest matches the one recorded at registration."""
    expected = MlflowClient(tracking_uri).get_model_version(name, version).tags.get(DIGEST_TAG)
    if not expected:
        raise IntegrityError(
            f"{name} v{version} has no recorded artifact digest (tag {DIGEST_TAG}); register it with domainflow "
            "so its files can be verified before they are served"
        )
    folder = download_model(tracking_uri, f"models:/{name}/{version}", destination)
    found = folder_digest(folder)
    if found != expected:
        raise IntegrityError(
            f"{name} v{version}: artifact digest {found[:12]}… does not match {expected[:12]}… recorded at "
            "registration; the files were changed after registration, refusing to serve them"
        )
    return folder
