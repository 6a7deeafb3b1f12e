"""A retrain's window is refused when its test month lies inside what the champion trained or validated on."""

from __future__ import annotations

from datetime import datetime

from domainflow.config import SplitConfig
from domainflow.retraining.plan import clear_of_champion, retraining_window

CHAMPION = SplitConfig(train_until=datetime(2013, 9, 1), validation_until=datetime(2013, 10, 1),
                       test_until=datetime(2013, 11, 1))  # fmt: skip
CURRENT = SplitConfig()  # train to July, validate July, test August


def test_a_test_window_inside_the_champions_validation_is_refused_naming_the_dates():
    early = retraining_window(CURRENT, datetime(2013, 10, 15))  # tests 2013-09-14 to 2013-10-15 (a 31-day test window)
    refused = clear_of_champion(early, CHAMPION, "4")
    assert refused.split is None
    assert "would start 2013-09-14, inside what champion v4 trained and validated on (to 2013-10-01)" in refused.note
    assert "retrain once labels reach 2013-11-01" in refused.note


def test_a_test_window_after_the_champions_windows_goes_ahead():
    later = retraining_window(CURRENT, datetime(2013, 11, 1))  # tests 2013-10-01 to 2013-11-01
    assert clear_of_champion(later, CHAMPION, "4") == later
    assert clear_of_champion(later, None) == later
