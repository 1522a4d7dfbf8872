"""The /newdeal wizard's draft: what the owner entered so far, one step at a time.

Steps, in order (see handlers.deal_wizard):

    title → groups → description → photo → price → tiers → minimum → min_value → stock →
    limit → closes → opens → reminders → pickup → preview

The preview also switches who may join from shared inline cards (`set_audience`: members
of the group, the default, or anyone with the card).

Every step method parses and checks its input with the services' own parsers
(services.parsing) and rules (services.deals: closing after opening, a minimum within the
stock, no time in the past — the same functions `deals.validate` runs at creation), raises
their ParseError (or UnknownChoice / NotGroupAdmin for a button) and then changes nothing,
or changes the draft and returns the next step. Typed input is read in the currency and the
timezone of the first chosen group (`Targets`); a price only in that group's currency
(services.parsing.parse_price_in: another currency is refused with the reason, never
taken as it is). A closing or opening time that has passed when the owner publishes is
asked again alone, then the preview (`fix`, `fixing`); a time that has passed is never
offered to keep (`can_keep`).

In the FSM data the draft is JSON only: money in minor units, times as ISO strings in UTC,
unset values left out (`to_data` / `from_data`; the format the wizard always stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Group
from services import deals
from services.deals import DealSpec, minute_of
from services.drafts import Draft, Flow, UnknownChoice, from_iso, ints, iso
from services.errors import NotGroupAdmin
from services.parsing import (
    ParseError,
    check_note,
    check_tiers,
    parse_local_datetime,
    parse_price_in,
    parse_quantity,
    parse_reminders,
    parse_tiers,
    parse_title,
)

MAX_DESCRIPTION = 1000
MAX_PICKUP = 500

STEPS = (
    "title",
    "groups",
    "description",
    "photo",
    "price",
    "tiers",
    "minimum",
    "min_value",
    "stock",
    "limit",
    "closes",
    "opens",
    "reminders",
    "pickup",
    "preview",
)
FLOW = Flow(STEPS)
NUMBERED = tuple(s for s in STEPS if s not in ("min_value", "preview"))
OPTIONAL = ("description", "photo", "tiers", "stock", "limit", "pickup")  # with Skip
BUTTON_ONLY = ("groups", "minimum", "preview")
TYPED = tuple(s for s in STEPS if s not in BUTTON_ONLY)  # steps that read text
CLOSE_PICKS = {"2h": "+2h", "tonight": "today 20:00", "tomorrow": "tomorrow 20:00", "3d": "+3d"}
OPEN_PICKS = {"1h": "+1h", "tomorrow9": "tomorrow 09:00"}
NOW_WORDS = {"now", "现在", "立即", "马上"}
MIN_KINDS = ("units", "participants")
FIXABLE = ("closes", "opens")  # steps asked alone when their time no longer holds at Publish
# What Skip stores at each optional step ("No minimum" at the minimum step, "No reminders"
# at the reminders step).
SKIPPED: dict[str, dict[str, Any]] = {
    "description": {"description": ""},
    "photo": {"photo": None},
    "tiers": {"tiers": []},
    "minimum": {"min_kind": None, "min_value": None},
    "stock": {"stock": None},
    "limit": {"limit": None},
    "pickup": {"pickup": ""},
    "reminders": {"reminders": ""},
}
_VALUE_OF = {
    "title": "title",
    "description": "description",
    "photo": "photo",
    "min_value": "min_value",
    "stock": "stock",
    "limit": "limit",
    "closes": "closes_at",
    "opens": "opens_at",
    "pickup": "pickup",
}


@dataclass
class Targets:
    """The draft's chosen groups, first chosen first; typed input is read in the first's
    currency and timezone."""

    groups: list[Group]
    default_timezone: str
    default_currency: str

    @property
    def timezone(self) -> str:
        return self.groups[0].timezone if self.groups else self.default_timezone

    @property
    def currency(self) -> str:
        return self.groups[0].currency if self.groups else self.default_currency

    @property
    def timezones(self) -> list[str]:
        return [g.timezone for g in self.groups] or [self.default_timezone]


async def load_targets(
    session: AsyncSession, group_ids: list[int] | None, timezone: str, currency: str
) -> Targets:
    """The chosen groups (in the draft's order; unknown ids dropped) with the defaults."""
    ids = [int(i) for i in group_ids or []]
    found: dict[int, Group] = {}
    if ids:
        found = {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(ids)))}
    return Targets([found[i] for i in ids if i in found], timezone, currency)


@dataclass
class DealDraft(Draft):
    title: str | None = None
    group_ids: list[int] | None = None  # None: not chosen yet (the only group is preselected)
    description: str | None = None
    photo: str | None = None
    price: int | None = None  # minor units of `currency`
    currency: str | None = None
    tiers: list[tuple[int, int]] | None = None
    min_kind: str | None = None  # units | participants
    min_value: int | None = None
    stock: int | None = None
    limit: int | None = None
    closes_at: datetime | None = None  # aware UTC
    opens_at: datetime | None = None  # None: opens when published
    pickup: str | None = None
    reminders: str | None = None  # as stored (parse_reminders); None: the default
    audience: str | None = None  # who may join from shared cards; None: "members"
    quick: bool = field(default=False)  # a copied deal: closes → preview
    # A time that no longer held at Publish ("closes" or "opens"): only it is asked again,
    # then the preview (None: the steps in their order).
    fixing: str | None = field(default=None)

    # ------------------------------------------------------------ FSM data

    def to_data(self) -> dict[str, Any]:
        draft: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("quick", "fixing") or not self.given(f.name):
                continue
            if f.name in ("closes_at", "opens_at"):
                value = iso(value)
            elif f.name == "tiers" and value is not None:
                value = [list(t) for t in value]
            elif f.name == "group_ids" and value is not None:
                value = list(value)
            draft[f.name] = value
        data: dict[str, Any] = {"draft": draft}
        if self.quick:
            data["quick"] = True
        if self.fixing:
            data["fixing"] = self.fixing
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> DealDraft:
        d = data.get("draft") or {}

        def num(key: str) -> int | None:
            return int(d[key]) if d.get(key) is not None else None

        return cls(
            title=d.get("title"),
            group_ids=ints(d["group_ids"]) if d.get("group_ids") is not None else None,
            description=d.get("description"),
            photo=d.get("photo"),
            price=num("price"),
            currency=d.get("currency"),
            tiers=[(int(a), int(b)) for a, b in d["tiers"]] if d.get("tiers") is not None else None,
            min_kind=d.get("min_kind"),
            min_value=num("min_value"),
            stock=num("stock"),
            limit=num("limit"),
            closes_at=from_iso(d.get("closes_at")),
            opens_at=from_iso(d.get("opens_at")),
            pickup=d.get("pickup"),
            reminders=d.get("reminders"),
            audience=d.get("audience") if d.get("audience") in deals.AUDIENCES else None,
            quick=bool(data.get("quick")),
            fixing=data.get("fixing") if data.get("fixing") in FIXABLE else None,
        )._mark_given(d)

    @classmethod
    def from_spec(cls, spec: DealSpec) -> DealDraft:
        """A copied deal's values; the times are chosen again."""
        return cls(
            title=spec.title,
            group_ids=list(spec.group_ids),
            description=spec.description,
            photo=spec.photo_file_id,
            price=spec.unit_price,
            currency=spec.currency,
            tiers=list(spec.tiers),
            min_kind=spec.min_kind,
            min_value=spec.min_value,
            stock=spec.stock,
            limit=spec.per_person_limit,
            pickup=spec.pickup_note,
            reminders=spec.reminders,
            audience=spec.audience,
            quick=True,
        )

    def spec(self) -> DealSpec:
        assert self.title is not None and self.currency is not None and self.price is not None
        assert self.closes_at is not None
        return DealSpec(
            title=self.title,
            currency=self.currency,
            unit_price=self.price,
            closes_at=self.closes_at,
            opens_at=self.opens_at,
            description=self.description or "",
            photo_file_id=self.photo or None,
            tiers=list(self.tiers or []),
            min_kind=self.min_kind or None,
            min_value=self.min_value if self.min_kind else None,
            stock=self.stock,
            per_person_limit=self.limit,
            pickup_note=self.pickup or "",
            group_ids=list(self.group_ids or []),
            reminders=self.reminders,
            audience=self.audience or "members",
        )

    # ------------------------------------------------------------ the order of the steps

    def _passed(self, step: str) -> bool:
        return step == "min_value" and not self.min_kind

    def next_step(self, step: str) -> str:
        if step == self.fixing:  # the time Publish refused is set again: back to the preview
            self.fixing = None
            return "preview"
        if step == "closes" and self.quick:
            return "preview"
        return FLOW.after(step, self._passed) or "preview"

    def prev_step(self, step: str) -> str | None:
        if step == "preview" and self.quick:
            return "closes"
        return FLOW.before(step, self._passed)

    def has_value(self, step: str) -> bool:
        if step == "price":
            return self.price is not None and self.currency is not None
        if step == "minimum":
            return bool(self.min_kind) and self.min_value is not None
        if step == "tiers":
            return bool(self.tiers) and self.price is not None
        if step == "reminders":  # a choice other than the default ("" is no reminders)
            return self.reminders is not None
        key = _VALUE_OF.get(step)
        return key is not None and getattr(self, key) not in (None, "", [])

    def can_keep(self, step: str, now: datetime) -> bool:
        """Whether "Keep current" is offered: the step has a value, and a time has not
        passed."""
        if not self.has_value(step):
            return False
        if step == "closes":
            return self.closes_at is not None and self.closes_at > now
        if step == "opens":
            return self.opens_at is not None and self.opens_at >= minute_of(now)
        return True

    def missing_step(self) -> str | None:
        """The first step publishing needs that has no value (None: complete)."""
        return next((s for s in ("title", "price", "closes") if not self.has_value(s)), None)

    # ------------------------------------------------------------ typed input

    def apply(self, step: str, text: str, targets: Targets, now: datetime) -> str:
        """Read what was typed at `step` (ParseError: nothing changed); the next step."""
        with self.changing() as d:
            d._read(step, (text or "").strip(), targets, now)
        return self.next_step(step)

    def _read(self, step: str, text: str, targets: Targets, now: datetime) -> None:
        if step == "title":
            self.title = parse_title(text)
        elif step == "description":
            self.description = check_note(text, MAX_DESCRIPTION)
        elif step == "photo":
            raise ParseError("photo_expected")
        elif step == "price":
            price = parse_price_in(text, targets.currency)  # the group's currency only
            if self.tiers and not self._tiers_fall_below(price.amount, price.currency):
                self.tiers = []  # entered for another price: they would no longer fall
            self.price, self.currency = price.amount, price.currency
        elif step == "tiers":
            if self.price is None or self.currency is None:
                raise ParseError("price_format", currency=targets.currency)
            self.tiers = parse_tiers(text, self.currency, self.price)
        elif step == "min_value":
            self.min_value = parse_quantity(text)
        elif step == "stock":
            stock = parse_quantity(text)
            deals.check_minimum_fits_stock(self.min_kind, self.min_value, stock)
            self.stock = stock
        elif step == "limit":
            self.limit = parse_quantity(text)
        elif step == "closes":
            self._set_closes(minute_of(parse_local_datetime(text, targets.timezone, now)), now)
        elif step == "opens":
            if text.lower() in NOW_WORDS:
                self.opens_at = None
            else:
                opens = minute_of(parse_local_datetime(text, targets.timezone, now))
                self._set_opens(opens, now)
        elif step == "reminders":
            self.reminders = parse_reminders(text)
        elif step == "pickup":
            self.pickup = check_note(text, MAX_PICKUP)
        else:
            raise ParseError("use_buttons")

    def _tiers_fall_below(self, price: int, currency: str) -> bool:
        try:
            check_tiers(self.tiers or [], price)
        except ParseError:
            return False
        return currency == self.currency

    def _set_closes(self, closes: datetime, now: datetime) -> None:
        deals.check_closes(closes, now)
        if self.opens_at is not None:
            passed = self.fixing == "closes" and self.opens_at < minute_of(now)
            try:
                deals.check_window(self.opens_at, closes)
            except ParseError:
                passed = True
            if passed:  # no longer fits, or (at Publish) it has passed too
                self.opens_at = None  # asked again at the next step
                if self.fixing == "closes":
                    self.fixing = "opens"  # …then the preview
        self.closes_at = closes

    def _set_opens(self, opens: datetime, now: datetime) -> None:
        deals.check_opens(opens, now)
        if self.closes_at is not None:
            deals.check_window(opens, self.closes_at)
        self.opens_at = opens if opens > now else None

    # ------------------------------------------------------------ buttons

    def choose(self, step: str, action: str, value: str, targets: Targets, now: datetime) -> str:
        """A button of `step` (besides Back, Cancel, the groups' and Publish): the next step;
        UnknownChoice if the step offers no such button, ParseError as for typed input."""
        if action == "skip":
            return self.skip(step)
        if action == "keep":
            return self.keep(step, now)
        if action == "kind" and step == "minimum":
            return self.choose_minimum(value)
        if action == "pick":
            return self.pick(step, value, targets, now)
        if action == "now" and step == "opens":
            return self.open_now()
        if action == "default" and step == "reminders":
            return self.default_reminders()
        if action == "audience" and step == "preview":
            return self.set_audience(value)
        raise UnknownChoice(action)

    def pick(self, step: str, choice: str, targets: Targets, now: datetime) -> str:
        """A quick pick of the closes / opens step: the same as typing its expression."""
        picks = CLOSE_PICKS if step == "closes" else OPEN_PICKS if step == "opens" else {}
        expression = picks.get(choice)
        if expression is None:
            raise UnknownChoice(choice)
        return self.apply(step, expression, targets, now)

    def skip(self, step: str) -> str:
        """Skip (No minimum, No reminders): the step's empty value."""
        if step not in SKIPPED:
            raise UnknownChoice(step)
        for key, value in SKIPPED[step].items():
            setattr(self, key, value)
        return "stock" if step == "minimum" else self.next_step(step)

    def keep(self, step: str, now: datetime) -> str:
        """Keep current: the value must still fit what changed around it."""
        if step in ("groups", "preview") or not self.has_value(step):
            raise UnknownChoice(step)
        with self.changing() as d:
            if step == "tiers":
                assert d.tiers is not None and d.price is not None
                check_tiers(d.tiers, d.price)
            elif step == "stock":
                deals.check_minimum_fits_stock(d.min_kind, d.min_value, d.stock)
            elif step == "closes":
                assert d.closes_at is not None
                d._set_closes(d.closes_at, now)
            elif step == "opens":
                assert d.opens_at is not None
                d._set_opens(d.opens_at, now)
        return "stock" if step == "minimum" else self.next_step(step)

    def set_photo(self, file_id: str) -> str:
        self.photo = file_id
        return self.next_step("photo")

    def choose_minimum(self, kind: str) -> str:
        if kind not in MIN_KINDS:
            raise UnknownChoice(kind)
        if self.min_kind != kind:
            self.min_value = None
        self.min_kind = kind
        return "min_value"

    def open_now(self) -> str:
        self.opens_at = None
        return self.next_step("opens")

    def set_audience(self, audience: str) -> str:
        """The preview's switch: who may join from shared cards ("members" | "anyone")."""
        if audience not in deals.AUDIENCES:
            raise UnknownChoice(audience)
        self.audience = audience
        return "preview"

    def default_reminders(self) -> str:
        self.reminders = None
        return self.next_step("reminders")

    # ------------------------------------------------------------ groups

    def preselect(self, owned: list[int]) -> bool:
        """Before the groups step: an owner with one group finds it chosen (True: changed)."""
        if self.group_ids is None and len(owned) == 1:
            self.group_ids = [owned[0]]
            return True
        return False

    def toggle_group(self, group_id: int, owned: list[int]) -> str:
        if group_id not in owned:
            raise NotGroupAdmin(group_id)
        chosen = [g for g in self.group_ids or [] if g != group_id]
        if len(chosen) == len(self.group_ids or []):
            chosen.append(group_id)
        self.group_ids = chosen
        return "groups"

    def confirm_groups(self, owned: dict[int, str]) -> str:
        """Done on the groups step (`owned`: group id → currency). Another first currency
        drops the price and tiers, so a price is never re-read in another currency."""
        chosen = [g for g in self.group_ids or [] if g in owned]
        if not chosen:
            raise ParseError("no_groups")
        self.group_ids = chosen
        if self.currency and self.currency != owned[chosen[0]]:
            self.forget("price", "currency", "tiers")
        return self.next_step("groups")

    def keep_owned(self, owned: list[int]) -> bool:
        """Publishing: drop groups the owner no longer runs. True if all are still theirs."""
        wanted = list(self.group_ids or [])
        if wanted and all(g in owned for g in wanted):
            return True
        self.group_ids = [g for g in wanted if g in owned]
        return False

    def fix(self, step: str) -> None:
        """Publishing refused the draft at `step`: for a time (closes, opens) only that step
        is asked again, then the preview; other steps go on in their order."""
        self.fixing = step if step in FIXABLE else None

    def step_for_error(self, err: ParseError, now: datetime) -> str:
        """The step to go back to when the deal could not be created."""
        if err.reason == "time_past":  # the closing time first: the opening must be before it
            if self.closes_at is not None and self.closes_at <= now:
                return "closes"
            opens = self.opens_at
            return "opens" if opens is not None and opens < minute_of(now) else "closes"
        return {
            "closes_before_opens": "opens",
            "price_positive": "price",
            "min_kind": "minimum",
            "quantity_positive": "minimum",
            "quantity_too_large": "stock",
            "min_above_stock": "stock",
            "no_groups": "groups",
        }.get(err.reason, "reminders" if err.reason.startswith("reminders_") else "title")
