"""Schedule computations under freezegun: APScheduler triggers built from [schedule]."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time

from syncd.config import ConfigError, ScheduleConfig, from_mapping
from syncd.daemon import _misfire, describe_schedule, make_trigger

BASE = {"source": {"type": "local", "path": "/srv/exports"}, "database": {"url": "sqlite:///x.db"}}


def schedule(**values: str) -> ScheduleConfig:
    return from_mapping({**BASE, "schedule": values}).schedule


@freeze_time("2026-11-25 10:00:00")
def test_interval_fires_every_interval_after_the_start_run() -> None:
    trigger = make_trigger(schedule(interval="30m"))
    now = datetime.now().astimezone()
    first = trigger.get_next_fire_time(None, now)
    assert first is not None and first - now == timedelta(minutes=30)
    second = trigger.get_next_fire_time(first, first)
    assert second is not None and second - first == timedelta(minutes=30)


@freeze_time("2026-11-25 10:00:00")
def test_jitter_stays_within_bounds() -> None:
    trigger = make_trigger(schedule(interval="30m", jitter="2m"))
    now = datetime.now().astimezone()
    fires = {trigger.get_next_fire_time(None, now) for _ in range(50)}
    offsets = {(f - now).total_seconds() for f in fires if f is not None}
    assert all(30 * 60 <= o <= 32 * 60 for o in offsets)
    assert len(offsets) > 1  # it does vary


@freeze_time("2026-11-25 10:07:13")
def test_cron_fires_on_the_half_hours() -> None:
    trigger = make_trigger(schedule(cron="*/30 * * * *"))
    now = datetime.now().astimezone()
    first = trigger.get_next_fire_time(None, now)
    assert first == now.replace(minute=30, second=0)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert second is not None and second - first == timedelta(minutes=30)


@freeze_time("2026-11-25 23:50:00")
def test_cron_weekday_and_hour_ranges() -> None:
    trigger = make_trigger(schedule(cron="15 8-18 * * mon-fri"))
    now = datetime.now().astimezone()  # Wednesday night
    nxt = trigger.get_next_fire_time(None, now)
    assert nxt is not None and (nxt.weekday(), nxt.hour, nxt.minute) == (3, 8, 15)


def test_bad_cron_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"schedule\.cron"):
        make_trigger(schedule(cron="61 * * * *"))


def test_misfire_grace_and_description() -> None:
    s = schedule(interval="1s", misfire_grace="10m", run_timeout="5m")
    assert _misfire(s) == 600
    assert describe_schedule(s) == "every 1s, run_timeout 300s, misfire_grace 600s"
