"""A domain's data prepared as every flow takes it, and the cache key that decides when it is prepared again."""

from __future__ import annotations

from domainflow.config import build_config
from domainflow.data.prepared import prepare_domain


def test_the_domains_rows_are_validated_quarantined_and_split(flights_factory, tmp_path):
    config = build_config({"privacy": {"seed": 0}})
    frame = flights_factory(3_000, seed=5)
    frame.loc[frame.index[:3], "distance"] = -1  # out of range: quarantined, not dropped
    data = prepare_domain(frame, "EWR", "sha256:x", config, str(tmp_path / "q" / "EWR.csv"))

    ewr = frame[frame["origin"] == "EWR"]
    assert (data.domain, data.source_fingerprint) == ("EWR", "sha256:x")
    assert data.validation.rows_in == len(ewr)
    assert len(data.validation.valid) + len(data.validation.quarantined) == len(ewr)
    assert sum(data.split.sizes().values()) == len(data.validation.valid)
    assert data.split.train[config.data.timestamp].max() < data.split.validation[config.data.timestamp].min()


def test_the_preparation_is_cached_on_what_it_reads_and_nothing_else():
    from domainflow.tasks.policies import _preparation_key

    base = build_config({})
    parameters = {"frame": None, "domain": "EWR", "source_fingerprint": "sha256:a", "config": base,
                  "quarantine_root": "/q"}  # fmt: skip
    key = _preparation_key(None, parameters)
    more_epochs = build_config({"training": {"max_epochs": 99}, "gate": {"min_test_auc": 0.7}})
    assert _preparation_key(None, {**parameters, "config": more_epochs}) == key
    later_split = build_config({"split": {"test_until": "2013-10-01"}})
    for changed in ({"config": later_split}, {"source_fingerprint": "sha256:b"}, {"domain": "JFK"}):
        assert _preparation_key(None, {**parameters, **changed}) != key, changed
