"""The time handlers read comes from the Dispatcher's `clock`, never from a module of theirs."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime, timedelta

import handlers
from services.timezones import Clock, utcnow
from tests.conftest import SettableClock


def test_the_real_clock_is_aware_utc() -> None:
    moment = Clock().now()
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    assert abs(moment - utcnow()) < timedelta(seconds=5)


def test_the_test_clock_runs_until_set_then_stands_still() -> None:
    clock = SettableClock()
    assert abs(clock.now() - utcnow()) < timedelta(seconds=5)
    moment = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
    clock.set(moment)
    assert clock.now() == clock.now() == moment
    clock.set(None)
    assert abs(clock.now() - utcnow()) < timedelta(seconds=5)


def test_no_handler_module_keeps_a_clock_of_its_own() -> None:
    for info in pkgutil.iter_modules(handlers.__path__):
        module = importlib.import_module(f"handlers.{info.name}")
        assert not callable(getattr(module, "now", None)), module.__name__


async def test_the_dispatcher_passes_the_harness_clock(harness) -> None:
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    harness.clock.set(moment)
    assert harness.app.clock is harness.app.dispatcher["clock"] is harness.clock
    assert harness.app.dispatcher["clock"].now() == moment
