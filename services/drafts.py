"""What the wizards' drafts share (services.deal_draft, services.post_draft): an ordered list
of steps, some of which a draft passes over, and the error for a choice a step does not offer.

A draft holds what a wizard collected so far. Each of its step methods checks the input of
one step with the services' own parsers and rules, raises their domain error (ParseError and
friends) and then changes nothing, or changes the draft and returns the step to show next.
Drafts are plain data: `to_data()` / `from_data()` move them in and out of the FSM data
dict (JSON values only). No aiogram here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from services.errors import DomainError


class UnknownChoice(DomainError):
    """A button value the step does not offer (an old or forged button)."""


@dataclass(frozen=True)
class Flow:
    """Steps in order; `passed(step)` says which ones the draft skips right now."""

    steps: tuple[str, ...]

    def after(self, step: str, passed: Callable[[str], bool]) -> str | None:
        i = self.steps.index(step) + 1
        while i < len(self.steps) and passed(self.steps[i]):
            i += 1
        return self.steps[i] if i < len(self.steps) else None

    def before(self, step: str, passed: Callable[[str], bool]) -> str | None:
        i = self.steps.index(step) - 1
        while i >= 0 and passed(self.steps[i]):
            i -= 1
        return self.steps[i] if i >= 0 else None


class Draft:
    """Base of the drafts (dataclasses): all-or-nothing changes, and which values are given.

    A value is given once a step set it, even to None ("no minimum", "opens now"); only
    given values go into the FSM data, so a draft read back is the draft that was stored."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_given", set())

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        given = self.__dict__.get("_given")
        if given is not None and name in self.__dataclass_fields__:  # type: ignore[attr-defined]
            given.add(name)

    def given(self, name: str) -> bool:
        return getattr(self, name) is not None or name in self.__dict__["_given"]

    def forget(self, *names: str) -> None:
        """Back to not given (left out of the FSM data)."""
        for name in names:
            setattr(self, name, None)
            self.__dict__["_given"].discard(name)

    def _mark_given(self, names: Iterable[str]) -> Self:
        self.__dict__["_given"].update(n for n in names if n in self.__dataclass_fields__)  # type: ignore[attr-defined]
        return self

    @contextmanager
    def changing(self) -> Iterator[Self]:
        """Work on a copy; only if the block ends without an error does the draft take it."""
        work = copy.deepcopy(self)
        yield work
        self.__dict__.update(work.__dict__)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def from_iso(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def ints(values: Any) -> list[int]:
    return [int(v) for v in values or []]
