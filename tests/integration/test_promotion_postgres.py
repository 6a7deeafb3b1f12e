"""Promotions on PostgreSQL: of controllers racing for a domain, exactly one wins; an operator wins over it."""

from __future__ import annotations

import pytest

from domainflow.store.database import open_database

from ..unit.store.test_promotions import (
    assert_an_operators_change_always_ends_the_promotion,
    assert_one_winner_per_race,
)

pytestmark = pytest.mark.integration


def test_racing_controllers_on_postgresql_never_both_win(postgres_database):
    url = postgres_database  # open_database picks the installed psycopg 3 driver
    engines = [open_database(url), open_database.__wrapped__(url), open_database.__wrapped__(url)]
    try:
        assert_one_winner_per_race(engines, rounds=30)
    finally:
        for engine in engines:
            engine.dispose()


def test_an_operators_change_racing_the_controller_on_postgresql_always_ends_its_promotion(postgres_database):
    engines = [open_database(postgres_database), open_database.__wrapped__(postgres_database)]
    try:
        assert_an_operators_change_always_ends_the_promotion(engines, rounds=20)
    finally:
        for engine in engines:
            engine.dispose()
