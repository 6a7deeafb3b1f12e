"""Personal data kept out of models and what is shown: found per column before training, masked in files (issue 18)."""

from __future__ import annotations

import pandas as pd
import pytest

from domainflow.config import ConfigError, build_config
from domainflow.data.prepared import PersonalDataFound, prepare_domain
from domainflow.pii import mask_frame, mask_text, scan_frame

PERSONAL = {
    "email": ["ana.diaz@example.com", "ops+alerts@mail.example.org"],
    "phone": ["(212) 555-0142", "+1 212-555-0199", "+442071838750"],
    "us_ssn": ["123-45-6789"],
    "payment_card": ["4111 1111 1111 1111", "5500-0000-0000-0004"],
    "ip_address": ["192.168.10.4", "2001:db8::ff00:42:8329"],
}
# Values these patterns must leave alone: flight data, times, dates, codes, a 16-digit number failing Luhn,
# an impossible address and social security number.
LOOKALIKES = ["UA", "N14228", "10:30", "2013-01-01 05:00:00", "1545", "4111 1111 1111 1112", "300.1.2.3",
              "000-12-3456", "EWR-ORD", "B6 1545"]  # fmt: skip


def test_each_kind_is_found_in_its_column_with_the_share_of_rows():
    columns = {kind: values + ["plain"] * (10 - len(values)) for kind, values in PERSONAL.items()}
    frame = pd.DataFrame({**columns, "lookalikes": LOOKALIKES, "distance": [719.0] * 10})

    found = {(f.column, f.kind): (f.rows, round(f.share, 2)) for f in scan_frame(frame, frame.columns)}

    assert found == {(kind, kind): (len(values), len(values) / 10) for kind, values in PERSONAL.items()}


def test_a_card_number_stored_as_an_integer_is_found_and_masked():
    frame = pd.DataFrame({"account": [4111111111111111, 1234567890123456, 42]})
    assert [(f.kind, f.rows) for f in scan_frame(frame, ["account"])] == [("payment_card", 1)]
    assert mask_frame(frame)["account"].tolist() == ["<payment_card>", 1234567890123456, 42]


def test_masking_replaces_each_kind_by_its_name_and_keeps_the_rest():
    text = "refund 4111 1111 1111 1111 to ana.diaz@example.com from 10.0.0.7, call (212) 555-0142, ssn 123-45-6789"
    assert mask_text(text) == ("refund <payment_card> to <email> from <ip_address>, call <phone>, ssn <us_ssn>")
    assert [mask_text(value) for value in LOOKALIKES] == LOOKALIKES


def test_a_feature_with_personal_data_stops_its_domain_naming_the_column_kind_and_share(flights_factory, tmp_path):
    frame = flights_factory(2_000, seed=3)
    ewr = frame.index[frame["origin"] == "EWR"]
    frame["dest"] = frame["dest"].astype(object)
    frame.loc[ewr[:5], "dest"] = "someone@example.com"
    config = build_config({"privacy": {"seed": 0}})

    with pytest.raises(PersonalDataFound, match=r"EWR: personal data in features \(dest: email in 5 rows \(0\.\d%\)\)"):
        prepare_domain(frame, "EWR", "sha256:x", config, str(tmp_path / "q" / "EWR.csv"))
    assert not (tmp_path / "q").exists()  # stopped before anything was written

    allowed = build_config({"privacy": {"seed": 0}, "data": {"allow_pii_columns": ["dest"]}})
    frame.loc[ewr[:3], "distance"] = -1  # out of range: quarantined, with their other values
    frame.loc[ewr[:3], "dest"] = "someone@example.com"
    data = prepare_domain(frame, "EWR", "sha256:x", allowed, str(tmp_path / "q" / "EWR.csv"))
    quarantined = pd.read_csv(data.validation.quarantine_path)
    assert len(quarantined) == 3 and set(quarantined["dest"]) == {"<email>"}
    assert "someone@example.com" not in (tmp_path / "q" / "EWR.csv").read_text()


def test_only_features_may_be_allowed_to_hold_personal_data():
    with pytest.raises(ConfigError, match=r"allow_pii_columns \['passenger_email'\] are not features"):
        build_config({"data": {"allow_pii_columns": ["passenger_email"]}})
