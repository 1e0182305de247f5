"""The rules of a query, without a store: durations, time ranges, cursors."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fleetmind.telemetry.errors import InvalidQuery
from fleetmind.telemetry.model import (
    EARLIEST,
    MAX_DURATION,
    Cursor,
    Query,
    format_duration,
    parse_duration,
    window,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_durations_are_bounded_before_any_arithmetic() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("3650d") == MAX_DURATION
    for text in ("3651d", "9999999999d", "99999999999999999999ms", "9" * 5000 + "s"):
        with pytest.raises(InvalidQuery, match="longer than 10 years"):
            parse_duration(text)
    for text in ("", "1x", "1 m", "-1m", "\u0661m", "1m "):  # an Arabic-Indic digit is not 0-9
        with pytest.raises(InvalidQuery, match="invalid duration"):
            parse_duration(text)


def test_a_duration_is_written_back_rounded_up() -> None:
    assert format_duration(timedelta(seconds=60.48)) == "1m1s"
    assert format_duration(timedelta(microseconds=1500)) == "2ms"
    assert format_duration(timedelta(days=1, hours=2)) == "1d2h"


def test_the_window_defaults_and_stays_in_range() -> None:
    assert window(None, None, NOW) == (NOW - timedelta(hours=1), NOW)
    early = datetime(1, 1, 1, 0, 30, tzinfo=UTC)
    assert window(None, early, NOW) == (EARLIEST, early)
    plus_one = timezone(timedelta(hours=1))
    start, _ = window(datetime(2026, 11, 24, 13, tzinfo=plus_one), None, NOW)
    assert start == NOW and start.tzinfo is UTC
    with pytest.raises(InvalidQuery, match="outside"):
        window(datetime(1, 1, 1, tzinfo=plus_one), None, NOW)
    with pytest.raises(InvalidQuery, match="outside"):
        window(None, datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2))), NOW)


def test_buckets_are_few_enough_and_start_after_the_first_moment() -> None:
    with pytest.raises(InvalidQuery, match=r"10,000 buckets.*\(1m1s or more\)"):
        Query("d", "m", NOW - timedelta(days=7), NOW, timedelta(seconds=1))
    Query("d", "m", NOW - timedelta(days=7), NOW, timedelta(minutes=2))
    with pytest.raises(InvalidQuery, match="one bucket after"):
        Query("d", "m", EARLIEST, EARLIEST + timedelta(hours=5), timedelta(hours=1))
    with pytest.raises(InvalidQuery, match="cursor"):
        Query("d", "m", NOW, NOW, timedelta(hours=1), after=Cursor(NOW, 1))


def test_a_cursor_goes_out_and_comes_back_unchanged() -> None:
    for cursor in (
        Cursor(NOW, 1),
        Cursor(EARLIEST, 7),
        Cursor(NOW + timedelta(microseconds=3), 99),
    ):
        assert Cursor.decode(cursor.encode()) == cursor
    for text in ("", "x", "MA", "LTE", "MS4w", "bm90IGEgY3Vyc29y", "ü"):
        with pytest.raises(InvalidQuery, match="invalid cursor"):
            Cursor.decode(text)
