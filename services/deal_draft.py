"""The /newdeal wizard's draft: what the owner entered so far, one step at a time.

Steps, in order (see handlers.deal_wizard):

    title → groups → description → photo → pay → digital → price → tiers → minimum →
    min_value → pay_time → stock → limit → closes → opens → reminders → pickup → preview

How members pay (`pay`: the methods the deployment offers, Settings.pay_methods, kept in
the FSM data as `methods` when the draft starts) comes before the price, so the price step
knows its currency: a Stars deal is priced in whole Stars (XTR, 1…10000), the others in
the first group's currency. The step is passed when only cash is offered. `digital` is
asked for Stars only (Stars pay for digital items only: "no" goes back to the way to pay,
without Stars). `pay_time`, for card and Stars: the payment deadline after success in
hours (a deal with a minimum) or the hold of a flash sale in minutes (no minimum).

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

import re
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
from services.money import STARS
from services.parsing import (
    ParseError,
    Price,
    check_note,
    check_tiers,
    parse_int,
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
    "pay",
    "digital",
    "price",
    "tiers",
    "minimum",
    "min_value",
    "pay_time",
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
BUTTON_ONLY = ("groups", "pay", "digital", "minimum", "preview")
PAY_STEPS = ("pay", "digital", "pay_time")  # passed on a cash deal (and "pay" when only cash)
MAX_STARS = 10_000  # a Stars price: whole Stars, 1…10000
DEFAULT_PAY_HOURS = 24
DEFAULT_HOLD_MINUTES = 15
_HOURS_WORDS = re.compile(r"\s*(h|hours?|小时|个小时)$", re.IGNORECASE)
_MINUTES_WORDS = re.compile(r"\s*(m|min|mins|minutes?|分钟|分)$", re.IGNORECASE)
_STARS_WORDS = re.compile(r"\s*(?:⭐\ufe0f?)?\s*(.*?)\s*(?:⭐\ufe0f?|stars?|xtr|颗星|星)?\s*", re.I)
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
    pay_method: str | None = None  # cash | card | stars; None: cash
    digital: bool | None = None  # a Stars deal's item is digital (False: said it is not)
    pay_hours: int | None = None  # the payment deadline after success; None: 24
    hold_minutes: int | None = None  # a flash sale's hold; None: 15
    # The ways to pay the deployment offered when the draft started (Settings.pay_methods);
    # None: cash only, and the pay steps are passed.
    methods: list[str] | None = field(default=None)
    quick: bool = field(default=False)  # a copied deal: closes → preview
    # A copied deal's product family (DealSpec.product_key): set by the copy, never a step.
    product: int | None = field(default=None)
    # A time that no longer held at Publish ("closes" or "opens"): only it is asked again,
    # then the preview (None: the steps in their order).
    fixing: str | None = field(default=None)

    # ------------------------------------------------------------ FSM data

    def to_data(self) -> dict[str, Any]:
        draft: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("quick", "fixing", "methods", "product") or not self.given(f.name):
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
        if self.product:
            data["product"] = self.product
        if self.fixing:
            data["fixing"] = self.fixing
        if self.offers_choice():
            data["methods"] = list(self.methods or [])
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
            pay_method=d.get("pay_method") if d.get("pay_method") in deals.PAY_METHODS else None,
            digital=bool(d["digital"]) if d.get("digital") is not None else None,
            pay_hours=num("pay_hours"),
            hold_minutes=num("hold_minutes"),
            methods=[m for m in data.get("methods") or [] if m in deals.PAY_METHODS] or None,
            quick=bool(data.get("quick")),
            product=int(data["product"]) if data.get("product") else None,
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
            pay_method=spec.pay_method,
            digital=spec.digital if spec.pay_method == "stars" else None,
            pay_hours=spec.pay_hours,
            hold_minutes=spec.hold_minutes,
            quick=True,
            product=spec.product_key,
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
            pay_method=self.pay_method or "cash",
            digital=bool(self.digital) and self.pay_method == "stars",
            pay_hours=self.pay_hours or DEFAULT_PAY_HOURS,
            hold_minutes=self.hold_minutes or DEFAULT_HOLD_MINUTES,
            product_key=self.product,
        )

    # ------------------------------------------------------------ the order of the steps

    def _passed(self, step: str) -> bool:
        if step == "min_value":
            return not self.min_kind
        if step == "pay":
            return not self.offers_choice()
        if step == "digital":
            return self.pay_method != "stars"
        if step == "pay_time":
            return not self.is_paid()
        return False

    def offers_choice(self) -> bool:
        """Whether the way to pay is asked: more than cash is offered."""
        return any(m != "cash" for m in self.methods or [])

    def is_paid(self) -> bool:
        """Paid in the chat (card or Stars), not cash on pickup."""
        return self.pay_method in ("card", "stars")

    def numbered(self) -> tuple[str, ...]:
        """The steps counted in "step n of total": the pay steps only when they are asked."""
        return tuple(s for s in NUMBERED if s not in PAY_STEPS or not self._passed(s))

    def pay_choices(self) -> list[str]:
        """The ways to pay the pay step offers (not Stars once the item is said not digital)."""
        methods = list(self.methods or ["cash"])
        if self.digital is False:
            methods = [m for m in methods if m != "stars"]
        return methods

    def price_currency(self, targets: Targets) -> str:
        """The currency the price is read in: Stars for a Stars deal, else the first group's."""
        return STARS if self.pay_method == "stars" else targets.currency

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
        if step == "pay":
            return self.pay_method is not None
        if step == "digital":
            return self.digital is True
        if step == "pay_time":
            return (self.pay_hours if self.min_kind else self.hold_minutes) is not None
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
            if self.pay_method == "stars":
                price = parse_stars(text)
            else:
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
        elif step == "pay_time":
            if self.min_kind:
                self.pay_hours = parse_bounded(text, _HOURS_WORDS, "pay_hours", deals.PAY_HOURS)
            else:
                self.hold_minutes = parse_bounded(
                    text, _MINUTES_WORDS, "hold_minutes", deals.HOLD_MINUTES
                )
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
        if action == "method" and step == "pay":
            return self.choose_pay(value)
        if action == "digital" and step == "digital":
            return self.choose_digital(value)
        if action == "default" and step == "pay_time":
            return self.default_pay_time()
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
        if step == "minimum" and self.is_paid() and self.tiers:
            raise ParseError("pay_tiers_minimum")  # paid once after success: tiers need one
        for key, value in SKIPPED[step].items():
            setattr(self, key, value)
        return self.next_step("min_value" if step == "minimum" else step)

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
        return self.next_step("min_value" if step == "minimum" else step)

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

    def choose_pay(self, method: str) -> str:
        """The way to pay. Stars and the other ways price in other currencies: a price (and
        tiers) entered for the other kind is dropped and asked again."""
        if method not in self.pay_choices():
            raise UnknownChoice(method)
        if (method == "stars") != (self.currency == STARS) and self.currency is not None:
            self.forget("price", "currency", "tiers")
        if method != "stars" and self.digital is not None:
            self.forget("digital")
        self.pay_method = method
        return self.next_step("pay")

    def choose_digital(self, answer: str) -> str:
        """Stars: is it a digital item? No: Stars cannot pay for it; the way to pay again."""
        if answer not in ("yes", "no") or self.pay_method != "stars":
            raise UnknownChoice(answer)
        if answer == "yes":
            self.digital = True
            return self.next_step("digital")
        self.digital = False
        self.forget("pay_method")
        if self.currency == STARS:
            self.forget("price", "currency", "tiers")
        return "pay"

    def default_pay_time(self) -> str:
        """The "24 h" / "15 min" button: the default deadline or hold."""
        if self.min_kind:
            self.pay_hours = DEFAULT_PAY_HOURS
        else:
            self.hold_minutes = DEFAULT_HOLD_MINUTES
        return self.next_step("pay_time")

    def offer(self, methods: list[str] | tuple[str, ...]) -> str | None:
        """The ways to pay the deployment offers now. A way (copied from a deal) it no longer
        offers is dropped: the step to ask again (None: nothing to ask)."""
        self.methods = [m for m in methods if m in deals.PAY_METHODS] or None
        if (self.pay_method or "cash") in (self.methods or ["cash"]):
            return None
        stars = self.currency == STARS
        for name in ("pay_method", "digital"):
            self.forget(name)
        if stars:
            self.forget("price", "currency", "tiers")
        if self.offers_choice():
            return "pay"
        return "price" if stars else None

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
        wanted = STARS if self.pay_method == "stars" else owned[chosen[0]]
        if self.currency and self.currency != wanted:
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
            "pay_method": "pay",
            "pay_stars_currency": "price",
            "pay_stars_digital": "digital",
            "pay_tiers_minimum": "minimum",
            "pay_hours": "pay_time",
            "hold_minutes": "pay_time",
        }.get(err.reason, "reminders" if err.reason.startswith("reminders_") else "title")


def parse_stars(text: str) -> Price:
    """A price in Telegram Stars: a whole number from 1 to MAX_STARS, with or without a
    star ("50", "⭐ 50", "50 stars"); anything else (another currency, decimals) is refused
    with "stars_price"."""
    match = _STARS_WORDS.fullmatch(text or "")
    number = match.group(1) if match else ""
    try:
        return Price(parse_int(number, minimum=1, maximum=MAX_STARS), STARS)
    except ParseError:
        raise ParseError("stars_price", min=1, max=MAX_STARS, currency=STARS) from None


def parse_bounded(text: str, unit: re.Pattern[str], reason: str, bounds: tuple[int, int]) -> int:
    """A whole number of hours / minutes within `bounds` ("24", "24 h"); else `reason`."""
    try:
        return parse_int(unit.sub("", (text or "").strip()), minimum=bounds[0], maximum=bounds[1])
    except ParseError:
        raise ParseError(reason, min=bounds[0], max=bounds[1]) from None
