from __future__ import annotations

from domainflow.summary import DomainOutcome, artifact_key


def test_artifact_key_is_lowercase_dashes():
    assert artifact_key("flight-delay", "EWR") == "flight-delay-ewr"
    assert artifact_key("My Model_v1.2", "JFK/T4") == "my-model-v1-2-jfk-t4"
    assert artifact_key("--x--") == "x"


def test_failed_outcome_markdown_lists_only_set_fields():
    text = DomainOutcome.failed("LGA", "split is empty").to_markdown()
    lines = text.splitlines()
    assert lines[:2] == ["| field | value |", "|---|---|"]
    assert "| domain | LGA |" in lines
    assert "| status | failed |" in lines
    assert "| error | split is empty |" in lines
    # Unset fields and empty lists are left out.
    assert not any(line.startswith("| rows_in ") or line.startswith("| aliases ") for line in lines)
