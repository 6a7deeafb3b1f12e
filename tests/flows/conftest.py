from __future__ import annotations

import pytest

from domainflow.config import PipelineConfig, build_config

from ..conftest import tiny_overrides


@pytest.fixture(scope="session", autouse=True)
def _flows_talk_to_prefect(prefect_api):
    yield


@pytest.fixture
def tiny_config(flights_sample_csv) -> PipelineConfig:
    return build_config(tiny_overrides(flights_sample_csv))


@pytest.fixture(scope="session")
def ewr_story(tmp_path_factory, prefect_api):
    """Full EWR under the default gates, trained once for the gate and canary scenarios (training is their cost).

    v1 (seed 42) becomes champion; v2 is a network alone that learned from shuffled labels (the gates
    reject it); v3 is a retrain with another seed (the gates make it challenger, whichever family
    wins). Tuning is off and the epochs few.
    """
    import dataclasses
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from domainflow.data.validation import LABEL_COLUMN
    from domainflow.flows.training import train_domain_model
    from domainflow.settings import resolve_settings
    from domainflow.training import trainer

    def trained_on_shuffled_labels(real_train_network):
        def train(pipeline, split, config, best_params=None, work_root=None):
            shuffled = split.train[LABEL_COLUMN].sample(frac=1.0, random_state=0).to_numpy()
            split = dataclasses.replace(split, train=split.train.assign(**{LABEL_COLUMN: shuffled}))
            return real_train_network(pipeline, split, config, best_params, work_root)

        return train

    home = tmp_path_factory.mktemp("ewr-story")
    with pytest.MonkeyPatch.context() as patch:
        isolate_home(patch, home)
        champion = train_domain_model("EWR", ewr_config(seed=42))
        with pytest.MonkeyPatch.context() as swap:
            swap.setattr(trainer, "train_network", trained_on_shuffled_labels(trainer.train_network))
            # Only the network may serve: its gradient-boosting sibling learns from the true labels and would pass.
            worse_state = train_domain_model("EWR", ewr_config(seed=7, candidates={"families": ["network"]}),
                                             return_state=True)  # fmt: skip
        retrain = train_domain_model("EWR", ewr_config(seed=8))
        model = MlflowClient(resolve_settings().tracking_uri).get_registered_model(champion.model_name)
        aliases = {alias: str(version) for alias, version in model.aliases.items()}
    return SimpleNamespace(home=home, champion=champion, worse_state=worse_state, worse=worse_state.result(),
                           retrain=retrain, aliases_after_training=aliases)  # fmt: skip


@pytest.fixture
def ewr_home(ewr_story, monkeypatch):
    """The EWR story's DOMAINFLOW_HOME for one test."""
    isolate_home(monkeypatch, ewr_story.home)
    return ewr_story.home


def isolate_home(patch: pytest.MonkeyPatch, home) -> None:
    patch.setenv("DOMAINFLOW_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "DOMAINFLOW_ARTIFACT_ROOT", "DOMAINFLOW_DATABASE_URL"):
        patch.delenv(name, raising=False)


def ewr_config(seed: int, **overrides) -> PipelineConfig:
    """The default config on EWR alone, tuning off, three epochs: the gates keep their default thresholds."""
    return build_config({
        "domains": {"values": ["EWR"]},
        "training": {"max_epochs": 3, "seed": seed},
        "tuning": {"n_trials": 0},
        "optimization": {"latency_repeats": 20},
        "privacy": {"seed": 0},
        **overrides,
    })  # fmt: skip
