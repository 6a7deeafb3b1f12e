from __future__ import annotations

from domainflow.summary import DomainOutcome, artifact_key, summarize_lifecycle


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


def test_the_published_report_carries_private_counts_not_exact_ones():
    outcome = DomainOutcome(
        domain="EWR", status="registered", rows_in=120_835, rows_kept=120_830, rows_quarantined=5, train_rows=60_714,
        network_val_auc=0.7566, published={"dp_rows_in": 120_842.3, "dp_train_label_rate": 0.3061},
    )  # fmt: skip
    text = outcome.to_markdown()
    assert "120,835" not in text and "120835" not in text and "60714" not in text
    assert "| dp_rows_in (differentially private) | 120,842 |" in text
    assert "| dp_train_label_rate (differentially private) | 0.306 |" in text
    assert "| network_val_auc | 0.7566 |" in text


def test_a_domain_left_without_a_champion_sits_out_the_rest_and_fails_the_run():
    gate = "failed max_test_log_loss (test_log_loss 0.7064, needs <= 0.6500)"
    jfk = DomainOutcome(domain="JFK", status="rejected", version="1", gate=gate, failed_checks=["max_test_log_loss"])
    ewr = DomainOutcome(domain="EWR", status="registered", version="1", aliases=["challenger", "champion"])
    unserved, served = jfk.after_finding_champion(None), ewr.after_finding_champion("1")

    assert served.in_service and not unserved.in_service
    assert unserved.timeline() == ["trained v1 (rejected)", "no champion: not served"]
    summary = summarize_lifecycle([served, unserved])
    assert summary.failed
    assert summary.message.startswith("1 of 2 domains have no champion to serve: JFK; rejected by the gates: JFK")
    # A rejected retrain leaves the champion serving: an outcome, not a failure.
    assert not summarize_lifecycle([served, jfk.after_finding_champion("1")]).failed
