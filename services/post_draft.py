"""The /schedule wizard's draft: a content post being created, or the schedule or groups of
a post being edited.

Steps (see handlers.schedule): groups → content → button → kind → days (weekly only) →
when → preview; editing the schedule runs kind → days → when, and is saved at its last step.
Every step method checks its input with services.calendar's own rules (the ones
`calendar.validate` runs when the post is stored), raises their ParseError (or UnknownChoice
/ NotGroupAdmin for a button) and then changes nothing, or changes the draft and returns the
next step. A one-off time is read in the first chosen group's timezone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, Group
from services import calendar, deals
from services.admins import AdminDirectory
from services.calendar import KINDS, PostSpec
from services.deals import minute_of, parse_code
from services.drafts import Draft, Flow, UnknownChoice, from_iso, ints, iso
from services.errors import NotGroupAdmin
from services.parsing import ParseError, parse_int, parse_local_datetime

STEPS = ("groups", "content", "button", "kind", "days", "when", "preview")
FLOW = Flow(STEPS)
EDIT_FLOW = Flow(("kind", "days", "when"))  # editing a post's schedule
TYPED = ("content", "button", "when")


async def chosen_groups(session: AsyncSession, group_ids: list[int] | None) -> list[Group]:
    """The groups by id, in the given order (unknown ids dropped)."""
    ids = [int(i) for i in group_ids or []]
    if not ids:
        return []
    found = {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


async def linkable_deals(
    session: AsyncSession, owner_id: int, limit: int = 6, *, admins: AdminDirectory | None = None
) -> list[Deal]:
    """The latest deals the person manages now and not closed yet, for the post's button."""
    recent = await deals.owned_by(session, owner_id, limit=10, admins=admins)
    return [d for d in recent if d.status in deals.OPEN_STATES][:limit]


def deal_code(text: str) -> int:
    """'D12' → 12 (ParseError deal_unknown if it is no deal code)."""
    deal_id = parse_code(text)
    if deal_id is None:
        raise ParseError("deal_unknown")
    return deal_id


def _day(value: str) -> int:
    try:
        return parse_int(value, maximum=6)
    except ParseError:
        raise UnknownChoice(value) from None


@dataclass
class PostDraft(Draft):
    group_ids: list[int] = field(default_factory=list)
    text: str | None = None
    photo: str | None = None
    deal_id: int | None = None
    kind: str | None = None  # once | daily | weekly | cron
    weekdays: list[int] | None = None  # 0 = Monday
    run_at: datetime | None = None  # once: aware UTC
    at_time: str | None = None  # daily / weekly: HH:MM
    cron: str | None = None
    edit: int | None = None  # the post being edited (its schedule or its groups)

    # ------------------------------------------------------------ FSM data

    def to_data(self) -> dict[str, Any]:
        draft: dict[str, Any] = {"group_ids": list(self.group_ids)}
        for key in ("text", "photo", "deal_id", "kind", "weekdays", "run_at", "at_time", "cron"):
            if self.given(key):
                value = getattr(self, key)
                draft[key] = iso(value) if key == "run_at" else value
        data: dict[str, Any] = {"draft": draft}
        if self.edit is not None:
            data["edit"] = self.edit
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PostDraft:
        d = data.get("draft") or {}
        return cls(
            group_ids=ints(d.get("group_ids")),
            text=d.get("text"),
            photo=d.get("photo"),
            deal_id=int(d["deal_id"]) if d.get("deal_id") is not None else None,
            kind=d.get("kind"),
            weekdays=ints(d["weekdays"]) if d.get("weekdays") is not None else None,
            run_at=from_iso(d.get("run_at")),
            at_time=d.get("at_time"),
            cron=d.get("cron"),
            edit=int(data["edit"]) if data.get("edit") else None,
        )._mark_given(d)

    def spec(self) -> PostSpec:
        days = self.weekdays or []
        return PostSpec(
            text=self.text or "",
            kind=self.kind or "once",
            group_ids=list(self.group_ids),
            photo_file_id=self.photo,
            deal_id=self.deal_id,
            run_at=self.run_at,
            at_time=self.at_time,
            weekdays=",".join(str(d) for d in sorted(days)) if days else None,
            cron=self.cron,
        )

    # ------------------------------------------------------------ the order of the steps

    def _passed(self, step: str) -> bool:
        return step == "days" and self.kind != "weekly"

    def prev_step(self, step: str) -> str | None:
        """The step before (None: the first; editing, Back leaves for the post's menu)."""
        if self.edit is not None:
            return EDIT_FLOW.before(step, self._passed) if step in EDIT_FLOW.steps else None
        return FLOW.before(step, self._passed)

    def next_step(self, step: str) -> str | None:
        """The step after (None: an edit is complete and is saved now)."""
        if self.edit is not None:
            return EDIT_FLOW.after(step, self._passed) if step in EDIT_FLOW.steps else None
        return FLOW.after(step, self._passed)

    # ------------------------------------------------------------ steps

    def choose(self, step: str, action: str, value: str) -> str | None:
        """A button of the kind, days or button step (No button): the next step;
        UnknownChoice if the step offers no such button, ParseError if Done is too early."""
        if step == "kind" and action == "kind":
            return self.choose_kind(value)
        if step == "days" and action == "day":
            return self.toggle_day(_day(value))
        if step == "days" and action == "done":
            return self.confirm_days()
        if step == "button" and action == "nodeal":
            return self.no_deal()
        raise UnknownChoice(action)

    def toggle_group(self, group_id: int, owned: set[int]) -> str:
        if group_id not in owned:
            raise NotGroupAdmin(group_id)
        chosen = self.group_ids
        self.group_ids = (
            [i for i in chosen if i != group_id] if group_id in chosen else [*chosen, group_id]
        )
        return "groups"

    def confirm_groups(self, owned: set[int]) -> str | None:
        """Done on the groups step: the owned ones, at least one."""
        chosen = calendar.check_groups([i for i in self.group_ids if i in owned])
        self.group_ids = chosen
        return self.next_step("groups")

    def set_content(self, text: str | None, photo: str | None) -> str | None:
        self.text = calendar.check_text(text or "", photo=photo is not None)
        self.photo = photo
        return self.next_step("content")

    async def choose_deal(
        self,
        session: AsyncSession,
        owner_id: int,
        deal_id: int,
        *,
        admins: AdminDirectory | None = None,
    ) -> str | None:
        """A button to a deal the person manages now (ParseError deal_unknown otherwise)."""
        await calendar.owner_deal(session, deal_id, owner_id, admins=admins)
        self.deal_id = deal_id
        return self.next_step("button")

    def no_deal(self) -> str | None:
        self.deal_id = None
        return self.next_step("button")

    def choose_kind(self, kind: str) -> str | None:
        if kind not in KINDS:
            raise UnknownChoice(kind)
        self.kind = kind
        self.forget("run_at", "at_time", "cron")
        return self.next_step("kind")

    def toggle_day(self, day: int) -> str:
        if not 0 <= day <= 6:
            raise UnknownChoice(str(day))
        days = set(self.weekdays or [])
        days.symmetric_difference_update({day})
        self.weekdays = sorted(days)
        return "days"

    def confirm_days(self) -> str | None:
        calendar.check_weekdays(self.weekdays or [])
        return self.next_step("days")

    def apply(self, step: str, text: str, timezone: str, now: datetime) -> str | None:
        """Typed input of the when step (ParseError: nothing changed); the next step."""
        if step != "when":
            raise ParseError("use_buttons")
        text = (text or "").strip()
        with self.changing() as d:
            if d.kind == "once":
                run_at = minute_of(parse_local_datetime(text, timezone, now))
                d.run_at = calendar.check_run_at(run_at, now)
            elif d.kind == "cron":
                d.cron = calendar.check_cron(text, timezone, now)
            else:
                d.at_time = calendar.parse_clock(text)
        return self.next_step("when")
