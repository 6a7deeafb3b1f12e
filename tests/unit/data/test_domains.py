from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from domainflow.config import DomainSpec
from domainflow.data.domains import DomainError, filter_domain, select_domains


@pytest.fixture
def frame():
    return pd.DataFrame({"origin": ["EWR"] * 5 + ["JFK"] * 3 + ["LGA"] * 1 + [None], "x": range(10)})


def test_configured_values_are_returned_in_order(frame):
    assert select_domains(frame, DomainSpec(values=["JFK", "EWR"])) == ["JFK", "EWR"]


def test_configured_value_without_rows_is_named(frame):
    with pytest.raises(DomainError, match="SFO"):
        select_domains(frame, DomainSpec(values=["EWR", "SFO"]))


def test_discovery_keeps_values_with_enough_rows(frame):
    assert select_domains(frame, DomainSpec(values=None, min_rows=3)) == ["EWR", "JFK"]
    assert select_domains(frame, DomainSpec(values=None, min_rows=1)) == ["EWR", "JFK", "LGA"]


def test_discovery_with_nothing_large_enough(frame):
    with pytest.raises(DomainError, match="min_rows"):
        select_domains(frame, DomainSpec(values=None, min_rows=100))


def test_missing_domain_column_is_named(frame):
    with pytest.raises(DomainError, match="'airport'"):
        select_domains(frame, DomainSpec(column="airport"))
    with pytest.raises(DomainError, match="'airport'"):
        filter_domain(frame, "airport", "EWR")


def test_filter_domain_returns_a_copy_of_matching_rows(frame):
    rows = filter_domain(frame, "origin", "JFK")
    assert rows["x"].tolist() == [5, 6, 7]
    rows.loc[:, "x"] = -1
    assert frame["x"].tolist() == list(range(10))


def test_numeric_domain_values_match_as_strings():
    frame = pd.DataFrame({"gate": [1, 1, 2]})
    assert len(filter_domain(frame, "gate", "1")) == 2
    assert select_domains(frame, DomainSpec(column="gate", values=["2"])) == ["2"]


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", "x' or name = 'y", ".hidden", "-dash", "", "a" * 65])
def test_a_configured_domain_that_cannot_name_a_folder_or_model_is_refused(name):
    """Names become folders (reports, quarantine), MLflow model names and filter strings: path or quote
    characters would escape the folder or the filter (issue 18)."""
    with pytest.raises(ValidationError, match="cannot name a domain"):
        DomainSpec(values=["EWR", name])


def test_a_discovered_domain_that_cannot_name_a_folder_or_model_is_refused_naming_it():
    frame = pd.DataFrame({"origin": ["EWR"] * 3 + ["../../etc"] * 3, "x": range(6)})
    with pytest.raises(DomainError, match=r"\['\.\./\.\./etc'\] of 'origin' cannot name a domain"):
        select_domains(frame, DomainSpec(values=None, min_rows=2))
    assert select_domains(frame, DomainSpec(values=["EWR"])) == ["EWR"]  # listed by name, the others are not read
