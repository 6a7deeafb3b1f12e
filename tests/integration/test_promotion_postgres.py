"""Promotion claims on PostgreSQL: of controllers racing for a domain, exactly one wins."""

from __future__ import annotations

import pytest

from domainflow.store.database import open_database

from ..unit.store.test_promotions import assert_one_winner_per_race

pytestmark = pytest.mark.integration


def test_racing_controllers_on_postgresql_never_both_win(postgres_database):
    url = postgres_database  # open_database picks the installed psycopg 3 driver
    engines = [open_database(url), open_database.__wrapped__(url), open_database.__wrapped__(url)]
    try:
        assert_one_winner_per_race(engines, rounds=30)
    finally:
        for engine in engines:
            engine.dispose()
