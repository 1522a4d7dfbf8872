"""/newdeal: the deal wizard in private chat, one step at a time, for owners of a group.

Steps, in order (each with Back and Cancel; optional ones with Skip; a step that already has
a value — after Back, or in a copied deal — shows it and offers "Keep current"):

    title → target groups → description → photo → unit price → price tiers → minimum
    (units / participants, then how many) → stock → per-person limit → closes-at →
    opens-at ("Now" or later) → reminders before closing (default 2 h and 15 min) →
    pickup / delivery note → preview (Publish / Back / Cancel)

Target groups come right after the title, before anything that depends on them: the unit
price is read in the currency of the FIRST group chosen (unless the owner names another
currency, as in `12.50 USD`), and typed times are read in that group's timezone. Choosing
groups again with another first currency drops the price and tiers entered before, so a
price is never silently re-read in another currency. An owner with a single group finds it
already selected and only taps Done.

The draft lives in FSM data as JSON values only (money in minor units, times as ISO strings
in UTC) in the SQL storage, so it survives a restart; its writes join the update's
transaction. Callback data names the step it belongs to: a button of an earlier step is
refused as out of date instead of acting on the current one. Group choices and the final
publication are re-checked on the server against the groups the user administers.

Publishing creates the deal in the update's transaction; posting it to the groups runs only
after that transaction committed (`bot.posts.publish`, through the app's `posts` refresher
when the Dispatcher has one). A deal that opens later is created
"scheduled" and posted by the scheduler when it opens.

`now()` is this module's clock (tests freeze it).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers.common import quote
from handlers.deal_texts import (
    local_times,
    money,
    parse_error_text,
    participants,
    reminders_text,
    units,
)
from models import Database, Group, User
from services import deals as deal_service
from services import events
from services.admins import AdminDirectory
from services.deals import DealSpec
from services.parsing import (
    ParseError,
    parse_local_datetime,
    parse_price,
    parse_quantity,
    parse_reminders,
    parse_tiers,
    parse_title,
)
from services.timezones import to_local, utcnow

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 1000
MAX_PICKUP = 500


def now() -> datetime:
    """The wizard's clock (UTC); tests monkeypatch it."""
    return utcnow()


# ---------------------------------------------------------------- after-commit publishing

BACKGROUND: set[asyncio.Future[Any]] = set()


def spawn(awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
    """Run in the background, keeping a reference until done (tests await `drain()`)."""
    task = asyncio.ensure_future(awaitable)
    BACKGROUND.add(task)
    task.add_done_callback(BACKGROUND.discard)
    return task


async def drain() -> None:
    """Wait for every background task started here (used by tests)."""
    while BACKGROUND:
        await asyncio.gather(*list(BACKGROUND), return_exceptions=True)


async def publish_deal(bot: Bot, db: Database, i18n: I18n, deal_id: int) -> None:
    """Post the deal to its groups (bot.posts, imported when needed). Used when the
    Dispatcher carries no `posts` refresher (whose `publish_soon` does the same, tracked)."""
    try:
        posts = importlib.import_module("bot.posts")
        await posts.publish(bot, db, i18n, deal_id)
    except Exception:
        log.exception("publishing deal %s failed", deal_id)


# ---------------------------------------------------------------- steps


class DealWizard(StatesGroup):
    title = State()
    groups = State()
    description = State()
    photo = State()
    price = State()
    tiers = State()
    minimum = State()
    min_value = State()
    stock = State()
    limit = State()
    closes = State()
    opens = State()
    reminders = State()
    pickup = State()
    preview = State()


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
NUMBERED = tuple(s for s in STEPS if s not in ("min_value", "preview"))
OPTIONAL = ("description", "photo", "tiers", "stock", "limit", "pickup")
BUTTON_ONLY = ("groups", "minimum", "preview")
CLOSE_PICKS = {"2h": "+2h", "tonight": "today 20:00", "tomorrow": "tomorrow 20:00", "3d": "+3d"}
OPEN_PICKS = {"1h": "+1h", "tomorrow9": "tomorrow 09:00"}
NOW_WORDS = {"now", "现在", "立即", "马上"}
# What Skip stores at each optional step ("No minimum" at the minimum step).
SKIPPED: dict[str, dict[str, Any]] = {
    "description": {"description": ""},
    "photo": {"photo": None},
    "tiers": {"tiers": []},
    "minimum": {"min_kind": None, "min_value": None},
    "stock": {"stock": None},
    "limit": {"limit": None},
    "pickup": {"pickup": ""},
    "reminders": {"reminders": ""},  # the "No reminders" button
}


class WizardCB(CallbackData, prefix="dw"):
    step: str  # the step the button belongs to ("-" for resume / restart)
    # back | cancel | skip | keep | toggle | done | kind | pick | now | default | publish | …
    action: str
    value: str = ""


def state_of(step: str) -> State:
    return getattr(DealWizard, step)


def step_of(raw_state: str | None) -> str | None:
    if not raw_state or not raw_state.startswith("DealWizard:"):
        return None
    step = raw_state.split(":", 1)[1]
    return step if step in STEPS else None


def next_step(step: str, data: dict[str, Any]) -> str:
    draft = data.get("draft", {})
    if step == "closes" and data.get("quick"):
        return "preview"
    i = STEPS.index(step) + 1
    if STEPS[i] == "min_value" and not draft.get("min_kind"):
        i += 1
    return STEPS[i]


def prev_step(step: str, data: dict[str, Any]) -> str | None:
    draft = data.get("draft", {})
    if step == "preview" and data.get("quick"):
        return "closes"
    i = STEPS.index(step) - 1
    if i < 0:
        return None
    if STEPS[i] == "min_value" and not draft.get("min_kind"):
        i -= 1
    return STEPS[i]


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


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


async def load_targets(session: AsyncSession, draft: dict[str, Any], settings: Settings) -> Targets:
    ids = [int(i) for i in draft.get("group_ids") or []]
    found: dict[int, Group] = {}
    if ids:
        found = {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(ids)))}
    return Targets(
        [found[i] for i in ids if i in found], settings.default_timezone, settings.default_currency
    )


# ---------------------------------------------------------------- reading what was typed


def accept_text(
    step: str, text: str, draft: dict[str, Any], targets: Targets, moment: datetime
) -> None:
    """Parse what was typed at `step` into the draft, or raise ParseError (draft unchanged)."""
    text = text.strip()
    if step == "title":
        draft["title"] = parse_title(text)
    elif step == "description":
        if len(text) > MAX_DESCRIPTION:
            raise ParseError("text_too_long", max=MAX_DESCRIPTION, length=len(text))
        draft["description"] = text
    elif step == "photo":
        raise ParseError("photo_expected")
    elif step == "price":
        price = parse_price(text, targets.currency)
        tiers = draft.get("tiers") or []
        if tiers and (price.currency != draft.get("currency") or tiers[0][1] >= price.amount):
            draft["tiers"] = []  # entered for another price: they would no longer fall
        draft["price"], draft["currency"] = price.amount, price.currency
    elif step == "tiers":
        tiers = parse_tiers(text, draft["currency"], int(draft["price"]))
        draft["tiers"] = [list(t) for t in tiers]
    elif step == "min_value":
        draft["min_value"] = parse_quantity(text)
    elif step == "stock":
        stock = parse_quantity(text)
        _check_stock(draft, stock)
        draft["stock"] = stock
    elif step == "limit":
        draft["limit"] = parse_quantity(text)
    elif step == "closes":
        closes = _minute(parse_local_datetime(text, targets.timezone, moment))
        _set_closes(draft, closes, moment)
    elif step == "opens":
        if text.lower() in NOW_WORDS:
            draft["opens_at"] = None
            return
        opens = _minute(parse_local_datetime(text, targets.timezone, moment))
        _set_opens(draft, opens, moment)
    elif step == "reminders":
        draft["reminders"] = parse_reminders(text)
    elif step == "pickup":
        if len(text) > MAX_PICKUP:
            raise ParseError("text_too_long", max=MAX_PICKUP, length=len(text))
        draft["pickup"] = text
    else:
        raise ParseError("use_buttons")


def _check_stock(draft: dict[str, Any], stock: int) -> None:
    if draft.get("min_kind") == "units" and (draft.get("min_value") or 0) > stock:
        raise ParseError("min_above_stock", stock=stock)


def _set_closes(draft: dict[str, Any], closes: datetime, moment: datetime) -> None:
    if closes <= moment:
        raise ParseError("time_past")
    opens = _dt(draft.get("opens_at"))
    if opens is not None and opens >= closes:
        draft["opens_at"] = None  # asked again at the next step
    draft["closes_at"] = closes.isoformat()


def _set_opens(draft: dict[str, Any], opens: datetime, moment: datetime) -> None:
    if opens < _minute(moment):
        raise ParseError("time_past")
    closes = _dt(draft.get("closes_at"))
    if closes is not None and opens >= closes:
        raise ParseError("closes_before_opens")
    draft["opens_at"] = opens.isoformat() if opens > moment else None


def check_kept(step: str, draft: dict[str, Any], moment: datetime) -> None:
    """A kept value must still fit what changed around it."""
    if step == "tiers" and draft.get("tiers"):
        if draft["tiers"][0][1] >= int(draft["price"]):
            raise ParseError("tiers_falling")
    elif step == "stock" and draft.get("stock") is not None:
        _check_stock(draft, int(draft["stock"]))
    elif step == "closes":
        _set_closes(draft, _dt(draft["closes_at"]), moment)
    elif step == "opens" and draft.get("opens_at"):
        _set_opens(draft, _dt(draft["opens_at"]), moment)


def has_value(step: str, draft: dict[str, Any]) -> bool:
    if step == "price":
        return draft.get("price") is not None and draft.get("currency") is not None
    if step == "minimum":
        return bool(draft.get("min_kind")) and draft.get("min_value") is not None
    if step == "tiers":
        return bool(draft.get("tiers")) and draft.get("price") is not None
    if step == "reminders":  # a choice other than the default ("" is no reminders)
        return draft.get("reminders") is not None
    key = {
        "title": "title",
        "description": "description",
        "photo": "photo",
        "min_value": "min_value",
        "stock": "stock",
        "limit": "limit",
        "closes": "closes_at",
        "opens": "opens_at",
        "pickup": "pickup",
    }.get(step)
    return key is not None and draft.get(key) not in (None, "", [])


def spec_from_draft(draft: dict[str, Any]) -> DealSpec:
    return DealSpec(
        title=draft["title"],
        currency=draft["currency"],
        unit_price=int(draft["price"]),
        closes_at=_dt(draft["closes_at"]),
        opens_at=_dt(draft.get("opens_at")),
        description=draft.get("description") or "",
        photo_file_id=draft.get("photo") or None,
        tiers=[(int(a), int(b)) for a, b in draft.get("tiers") or []],
        min_kind=draft.get("min_kind") or None,
        min_value=draft.get("min_value") if draft.get("min_kind") else None,
        stock=draft.get("stock"),
        per_person_limit=draft.get("limit"),
        pickup_note=draft.get("pickup") or "",
        group_ids=[int(g) for g in draft.get("group_ids") or []],
        reminders=draft.get("reminders"),
    )


def draft_from_spec(spec: DealSpec) -> dict[str, Any]:
    """A copied deal's values; times are chosen again."""
    return {
        "title": spec.title,
        "group_ids": list(spec.group_ids),
        "description": spec.description,
        "photo": spec.photo_file_id,
        "price": spec.unit_price,
        "currency": spec.currency,
        "tiers": [list(t) for t in spec.tiers],
        "min_kind": spec.min_kind,
        "min_value": spec.min_value,
        "stock": spec.stock,
        "limit": spec.per_person_limit,
        "pickup": spec.pickup_note,
        "reminders": spec.reminders,
    }


# ---------------------------------------------------------------- rendering


def _tiers_text(draft: dict[str, Any]) -> str:
    return ", ".join(
        _("from {units}: {price}").format(
            units=units(int(t)), price=money(int(p), draft["currency"])
        )
        for t, p in draft.get("tiers") or []
    )


def _minimum_text(draft: dict[str, Any]) -> str:
    kind, value = draft.get("min_kind"), draft.get("min_value")
    if not kind or value is None:
        return _("none")
    return units(int(value)) if kind == "units" else participants(int(value))


def current_value(step: str, draft: dict[str, Any], targets: Targets) -> str:
    if step == "title":
        return quote(draft["title"])
    if step == "description":
        text = draft["description"]
        return quote(text if len(text) <= 200 else text[:200] + "…")
    if step == "photo":
        return _("a photo")
    if step == "price":
        return money(int(draft["price"]), draft["currency"])
    if step == "tiers":
        return _tiers_text(draft)
    if step == "minimum":
        return _minimum_text(draft)
    if step in ("min_value", "stock", "limit"):
        return str(draft[{"min_value": "min_value", "stock": "stock", "limit": "limit"}[step]])
    if step == "closes":
        return local_times(_dt(draft["closes_at"]), targets.timezones)
    if step == "opens":
        return local_times(_dt(draft["opens_at"]), targets.timezones)
    if step == "pickup":
        return quote(draft["pickup"])
    if step == "reminders":
        return reminders_text(draft.get("reminders"))
    return ""  # pragma: no cover


def step_prompt(step: str, data: dict[str, Any], targets: Targets, moment: datetime) -> str:
    draft = data.get("draft", {})
    tz = targets.timezone
    local_now = to_local(moment, tz).strftime("%Y-%m-%d %H:%M")
    if step == "title":
        body = _(
            "Send the title of the deal (up to 100 characters), "
            "for example <code>Hainan mangoes 5 kg</code>."
        )
    elif step == "groups":
        body = _(
            "Which of your groups get this deal? Tap to select or unselect, then tap Done.\n"
            "Prices use the currency of the first group selected, and times its timezone."
        )
    elif step == "description":
        body = _("Send a description (what it is, origin, size, how it is packed…), or tap Skip.")
    elif step == "photo":
        body = _("Send a photo of the product, or tap Skip.")
    elif step == "price":
        body = _(
            "Send the unit price in {currency}, for example <code>12.50</code>, "
            "<code>12,50</code>, <code>¥12.5</code> or <code>12.50 CNY</code>."
        ).format(currency=targets.currency)
    elif step == "tiers":
        body = _(
            "Optional price tiers: the more units are ordered in total, the lower the price for "
            "everyone. Send them as <code>units:price</code>, for example "
            "<code>10:11.00, 20:9.90</code> (from 10 units the price is 11.00), or tap Skip.\n"
            "Unit price: {price}."
        ).format(price=money(int(draft["price"]), draft["currency"]))
    elif step == "minimum":
        body = _(
            "Does the deal need a minimum to succeed? If it is not reached by the closing time, "
            "the deal fails and nobody pays. Choose what to count, or tap No minimum."
        )
    elif step == "min_value":
        if draft.get("min_kind") == "participants":
            body = _(
                "How many people must join for the deal to succeed? "
                "Send a number, for example <code>5</code>."
            )
        else:
            body = _(
                "How many units must be ordered in total for the deal to succeed? "
                "Send a number, for example <code>10</code>."
            )
    elif step == "stock":
        body = _(
            "How many units can you supply in total? Send a number, for example <code>50</code>, "
            "or tap Skip for no stock limit."
        )
    elif step == "limit":
        body = _(
            "At most how many units may one person order? Send a number, for example "
            "<code>3</code>, or tap Skip for no limit."
        )
    elif step == "closes":
        body = _(
            "When does the deal close? Send a time in {timezone} time (now {now}), for example "
            "<code>2026-12-01 20:00</code>, <code>tomorrow 20:00</code>, <code>明天 20:00</code> "
            "or <code>+2h</code>, or tap a quick pick."
        ).format(timezone=tz, now=local_now)
    elif step == "opens":
        body = _(
            "When does the deal open? Tap Now to publish it when you confirm, or send a later "
            "time in {timezone} time (now {now}), for example <code>tomorrow 09:00</code> "
            "or <code>+1h</code>."
        ).format(timezone=tz, now=local_now)
    elif step == "reminders":
        body = _(
            "Reminders in the groups before the deal closes, with the time left and what is "
            "still missing. Send how long before closing, for example <code>2h, 15m</code>, "
            "<code>90m</code>, <code>1h30m</code> or <code>2小时 15分钟</code> (at most 3, each "
            "between 5 minutes and 7 days), or tap a button."
        )
    elif step == "pickup":
        body = _(
            "Where and when do members get their goods? Send a pickup or delivery note, for "
            "example <code>Pick up at gate 3, Saturday 10:00–12:00</code>, or tap Skip."
        )
    else:
        return preview_text(draft, targets)
    if data.get("quick"):
        header = _("<b>Copy of a deal</b>")
    else:
        n = NUMBERED.index("minimum" if step == "min_value" else step) + 1
        header = _("<b>New deal</b> · step {n} of {total}").format(n=n, total=len(NUMBERED))
    text = header + "\n\n" + body
    if has_value(step, draft):
        text += "\n\n" + _("Current: {value}").format(value=current_value(step, draft, targets))
    return text


def preview_text(draft: dict[str, Any], targets: Targets) -> str:
    currency = draft["currency"]
    lines = [_("<b>Preview</b>"), "", f"<b>{quote(draft['title'])}</b>"]
    if draft.get("description"):
        lines.append(quote(draft["description"]))
    lines.append("")
    lines.append(_("Price: {price} per unit").format(price=money(int(draft["price"]), currency)))
    if draft.get("tiers"):
        lines.append(_("Tiers: {tiers}").format(tiers=_tiers_text(draft)))
    lines.append(_("Minimum to succeed: {value}").format(value=_minimum_text(draft)))
    stock = draft.get("stock")
    lines.append(
        _("Stock: {value}").format(value=units(int(stock)))
        if stock is not None
        else _("Stock: unlimited")
    )
    limit = draft.get("limit")
    lines.append(
        _("Per person: at most {value}").format(value=units(int(limit)))
        if limit is not None
        else _("Per person: no limit")
    )
    opens = _dt(draft.get("opens_at"))
    lines.append(
        _("Opens: {time}").format(time=local_times(opens, targets.timezones))
        if opens is not None
        else _("Opens: now, when you publish")
    )
    lines.append(
        _("Closes: {time}").format(time=local_times(_dt(draft["closes_at"]), targets.timezones))
    )
    lines.append(_("Reminders: {value}").format(value=reminders_text(draft.get("reminders"))))
    if draft.get("pickup"):
        lines.append(_("Pickup / delivery: {note}").format(note=quote(draft["pickup"])))
    if draft.get("photo"):
        lines.append(_("Photo: attached"))
    lines.append(
        _("Groups: {titles}").format(
            titles=", ".join(quote(g.title or str(g.chat_id)) for g in targets.groups)
        )
    )
    lines += ["", _("Publish this deal?")]
    return "\n".join(lines)


def _button(text: str, step: str, action: str, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=WizardCB(step=step, action=action, value=value).pack()
    )


def step_keyboard(
    step: str,
    data: dict[str, Any],
    targets: Targets,
    moment: datetime,
    owned: list[Group] | None = None,
) -> InlineKeyboardMarkup:
    draft = data.get("draft", {})
    rows: list[list[InlineKeyboardButton]] = []
    if step == "groups":
        chosen = set(draft.get("group_ids") or [])
        for group in owned or []:
            mark = "✅" if group.id in chosen else "▫️"
            label = f"{mark} {group.title or group.chat_id}"
            rows.append([_button(label, step, "toggle", str(group.id))])
        rows.append([_button(_("Done"), step, "done")])
    elif step == "minimum":
        rows.append(
            [
                _button(_("Units"), step, "kind", "units"),
                _button(_("Participants"), step, "kind", "participants"),
            ]
        )
        rows.append([_button(_("No minimum"), step, "skip")])
    elif step == "closes":
        picks = [_button(_("+2 hours"), step, "pick", "2h")]
        if to_local(moment, targets.timezone).hour < 19:
            picks.append(_button(_("Tonight 20:00"), step, "pick", "tonight"))
        rows.append(picks)
        rows.append(
            [
                _button(_("Tomorrow 20:00"), step, "pick", "tomorrow"),
                _button(_("+3 days"), step, "pick", "3d"),
            ]
        )
    elif step == "opens":
        rows.append([_button(_("Now"), step, "now")])
        rows.append(
            [
                _button(_("+1 hour"), step, "pick", "1h"),
                _button(_("Tomorrow 09:00"), step, "pick", "tomorrow9"),
            ]
        )
    elif step == "reminders":
        rows.append([_button(_("Keep default (2 h and 15 min)"), step, "default")])
        rows.append([_button(_("No reminders"), step, "skip")])
    elif step == "preview":
        rows.append([_button(_("✅ Publish"), step, "publish")])
    if step in OPTIONAL:
        rows.append([_button(_("Skip"), step, "skip")])
    if step not in ("groups", "preview") and has_value(step, draft):
        rows.append([_button(_("Keep current"), step, "keep")])
    rows.append([_button(_("« Back"), step, "back"), _button(_("✖ Cancel"), step, "cancel")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def owned_groups(session: AsyncSession, admins: AdminDirectory, user_id: int) -> list[Group]:
    return [g for g, _status in await admins.groups_of(session, user_id)]


async def show_step(
    bot: Bot,
    user_id: int,
    step: str,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    settings: Settings,
    *,
    note: str | None = None,
) -> None:
    """Move to `step` and send its prompt and buttons (after `note`, e.g. why input failed)."""
    data = await state.get_data()
    draft = data.setdefault("draft", {})
    owned = None
    if step == "groups":
        owned = await owned_groups(session, admins, user_id)
        if "group_ids" not in draft and len(owned) == 1:
            draft["group_ids"] = [owned[0].id]  # the only group: already selected
    await state.set_state(state_of(step))
    await state.set_data(data)
    targets = await load_targets(session, draft, settings)
    moment = now()
    text = step_prompt(step, data, targets, moment)
    if note:
        text = note + "\n\n" + text
    await bot.send_message(
        user_id, text, reply_markup=step_keyboard(step, data, targets, moment, owned)
    )


async def refuse_input(
    bot: Bot,
    user_id: int,
    step: str,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    settings: Settings,
    reason: str,
) -> None:
    """Say why the input was refused and stay on the step (its buttons again)."""
    if step in BUTTON_ONLY:
        await show_step(bot, user_id, step, state, session, admins, settings, note=reason)
        return
    data = await state.get_data()
    targets = await load_targets(session, data.get("draft", {}), settings)
    await bot.send_message(user_id, reason, reply_markup=step_keyboard(step, data, targets, now()))


# ---------------------------------------------------------------- handlers


def not_an_owner() -> str:
    return _(
        "Only owners and administrators of a group can create deals. Add me to your group and "
        "make me an administrator, then send /newdeal again."
    )


async def start_wizard(
    bot: Bot,
    user_id: int,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    await state.set_data({"draft": {}})
    await show_step(bot, user_id, "title", state, session, admins, settings)


async def newdeal_command(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    if not await owned_groups(session, admins, user.id):
        await state.clear()
        await message.answer(not_an_owner())
        return
    step = step_of(await state.get_state())
    data = await state.get_data()
    if step is not None and data.get("draft", {}).get("title"):
        await message.answer(
            _("You have an unfinished deal, “{title}”. Continue it or start over?").format(
                title=quote(data["draft"]["title"])
            ),
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[
                    [
                        _button(_("Continue"), "-", "resume"),
                        _button(_("Start over"), "-", "restart"),
                    ]
                ]
            ),
        )
        return
    await start_wizard(message.bot, user.id, state, session, admins, settings)


async def cancel_command(message: Message, state: FSMContext, session: AsyncSession) -> None:
    await state.clear()
    await message.answer(_("The draft is discarded. Send /newdeal to start again."))


async def text_typed(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    step = step_of(await state.get_state())
    if step is None:  # pragma: no cover - the state filter let it through
        return
    bot = message.bot
    if step in BUTTON_ONLY:
        await refuse_input(
            bot,
            user.id,
            step,
            state,
            session,
            admins,
            settings,
            parse_error_text(ParseError("use_buttons")),
        )
        return
    data = await state.get_data()
    draft = dict(data.get("draft", {}))
    targets = await load_targets(session, draft, settings)
    try:
        accept_text(step, message.text or "", draft, targets, now())
    except ParseError as err:
        await refuse_input(
            bot, user.id, step, state, session, admins, settings, parse_error_text(err)
        )
        return
    data["draft"] = draft
    await state.set_data(data)
    await show_step(bot, user.id, next_step(step, data), state, session, admins, settings)


async def photo_sent(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    data = await state.get_data()
    data.setdefault("draft", {})["photo"] = message.photo[-1].file_id  # the largest size
    await state.set_data(data)
    await show_step(
        message.bot, user.id, next_step("photo", data), state, session, admins, settings
    )


async def other_content(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    step = step_of(await state.get_state())
    if step is None:  # pragma: no cover
        return
    reason = (
        parse_error_text(ParseError("photo_expected"))
        if step == "photo"
        else _("Please send the value as text, or use the buttons.")
    )
    await refuse_input(message.bot, user.id, step, state, session, admins, settings, reason)


async def wizard_button(
    query: CallbackQuery,
    callback_data: WizardCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    db: Database,
    i18n: I18n,
    posts: Any = None,
) -> None:
    bot = query.bot
    action = callback_data.action
    step = step_of(await state.get_state())
    if callback_data.step == "-":
        if not await owned_groups(session, admins, user.id):
            await state.clear()
            await query.answer(not_an_owner(), show_alert=True)
            return
        await query.answer()
        if action == "resume" and step is not None:
            await show_step(bot, user.id, step, state, session, admins, settings)
        else:
            await start_wizard(bot, user.id, state, session, admins, settings)
        return
    if step is None:
        await query.answer(
            _("This draft is no longer open. Send /newdeal to create a deal."), show_alert=True
        )
        return
    if action == "cancel":
        await state.clear()
        await query.answer(_("Cancelled."))
        await bot.send_message(user.id, _("The draft is discarded. Send /newdeal to start again."))
        return
    if callback_data.step != step:
        await query.answer(
            _("This button belongs to an earlier step. Use the latest message."), show_alert=True
        )
        return
    data = await state.get_data()
    draft = data.setdefault("draft", {})
    moment = now()

    async def go(to: str, note: str | None = None) -> None:
        await state.set_data(data)
        await show_step(bot, user.id, to, state, session, admins, settings, note=note)

    async def refuse(err: ParseError) -> None:
        await query.answer()
        await refuse_input(
            bot, user.id, step, state, session, admins, settings, parse_error_text(err)
        )

    if action == "back":
        previous = prev_step(step, data)
        if previous is None:
            await query.answer(_("This is the first step."))
            return
        await query.answer()
        await show_step(bot, user.id, previous, state, session, admins, settings)
    elif action == "skip" and step in SKIPPED:
        draft.update(SKIPPED[step])
        await query.answer()
        await go("stock" if step == "minimum" else next_step(step, data))
    elif action == "keep" and has_value(step, draft):
        try:
            check_kept(step, draft, moment)
        except ParseError as err:
            await refuse(err)
            return
        await query.answer()
        await go("stock" if step == "minimum" else next_step(step, data))
    elif action == "toggle" and step == "groups":
        await _toggle_group(query, callback_data, state, session, user, admins, data)
    elif action == "done" and step == "groups":
        owned = {g.id: g for g in await owned_groups(session, admins, user.id)}
        chosen = [g for g in draft.get("group_ids") or [] if g in owned]
        if not chosen:
            await query.answer(parse_error_text(ParseError("no_groups")), show_alert=True)
            return
        draft["group_ids"] = chosen
        if draft.get("currency") and draft["currency"] != owned[chosen[0]].currency:
            for key in ("price", "currency", "tiers"):
                draft.pop(key, None)
        await query.answer()
        await go(next_step(step, data))
    elif (
        action == "kind" and step == "minimum" and callback_data.value in ("units", "participants")
    ):
        if draft.get("min_kind") != callback_data.value:
            draft["min_value"] = None
        draft["min_kind"] = callback_data.value
        await query.answer()
        await go("min_value")
    elif action == "pick" and step in ("closes", "opens"):
        picks = CLOSE_PICKS if step == "closes" else OPEN_PICKS
        expression = picks.get(callback_data.value)
        if expression is None:
            await query.answer(_("This button is out of date."), show_alert=True)
            return
        targets = await load_targets(session, draft, settings)
        try:
            accept_text(step, expression, draft, targets, moment)
        except ParseError as err:
            await refuse(err)
            return
        await query.answer()
        await go(next_step(step, data))
    elif action == "now" and step == "opens":
        draft["opens_at"] = None
        await query.answer()
        await go(next_step(step, data))
    elif action == "default" and step == "reminders":
        draft["reminders"] = None
        await query.answer()
        await go(next_step(step, data))
    elif action == "publish" and step == "preview":
        await _publish(query, state, session, user, admins, settings, db, i18n, data, posts)
    else:
        await query.answer(_("This button is out of date."), show_alert=True)


async def _toggle_group(
    query: CallbackQuery,
    callback_data: WizardCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    data: dict[str, Any],
) -> None:
    draft = data["draft"]
    owned = await owned_groups(session, admins, user.id)
    try:
        group_id = int(callback_data.value)
    except ValueError:
        group_id = 0
    if group_id not in {g.id for g in owned}:
        await query.answer(
            _("You are not an owner or administrator of that group."), show_alert=True
        )
        return
    chosen = [g for g in draft.get("group_ids") or [] if g != group_id]
    if len(chosen) == len(draft.get("group_ids") or []):
        chosen.append(group_id)
    draft["group_ids"] = chosen
    await state.set_data(data)
    await query.answer()
    targets = Targets([], "", "")
    keyboard = step_keyboard("groups", data, targets, now(), owned)
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=keyboard)
            return
        except TelegramBadRequest:
            pass
    await query.bot.send_message(user.id, _("Choose the groups:"), reply_markup=keyboard)


def _step_for_error(err: ParseError, draft: dict[str, Any], moment: datetime) -> str:
    if err.reason == "time_past":
        opens = _dt(draft.get("opens_at"))
        return "opens" if opens is not None and opens < _minute(moment) else "closes"
    return {
        "closes_before_opens": "opens",
        "price_positive": "price",
        "min_kind": "minimum",
        "quantity_positive": "minimum",
        "quantity_too_large": "stock",
        "min_above_stock": "stock",
        "no_groups": "groups",
    }.get(err.reason, "reminders" if err.reason.startswith("reminders_") else "title")


async def _publish(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    settings: Settings,
    db: Database,
    i18n: I18n,
    data: dict[str, Any],
    posts: Any,
) -> None:
    bot = query.bot
    draft = data["draft"]
    owned = {g.id for g in await owned_groups(session, admins, user.id)}
    wanted = [int(g) for g in draft.get("group_ids") or []]
    if not wanted or any(g not in owned for g in wanted):
        draft["group_ids"] = [g for g in wanted if g in owned]
        await state.set_data(data)
        await query.answer()
        await show_step(
            bot, user.id, "groups", state, session, admins, settings,
            note=_("You no longer run some of the chosen groups. Choose the groups again."),
        )  # fmt: skip
        return
    for step in ("title", "price", "closes"):
        if not has_value(step, draft):  # pragma: no cover - the steps filled them in
            await query.answer()
            await show_step(bot, user.id, step, state, session, admins, settings)
            return
    moment = now()
    try:
        deal = await deal_service.create(session, user.id, spec_from_draft(draft), moment)
    except ParseError as err:
        await query.answer()
        await show_step(
            bot, user.id, _step_for_error(err, draft, moment), state, session, admins, settings,
            note=parse_error_text(err),
        )  # fmt: skip
        return
    await state.clear()
    deal_id, code = deal.id, deal.code
    log.info("deal %s created by %s (%s)", deal_id, user.id, deal.status)
    if deal.status == "open":  # posted to its groups once this commits (bot/effects.py)
        events.record(session, events.DealOpened(deal_id))
        text = ngettext(
            "Deal {code} is created and is being posted to {n} group.",
            "Deal {code} is created and is being posted to {n} groups.",
            len(wanted),
        ).format(code=code, n=len(wanted))
    else:
        targets = await load_targets(session, draft, settings)
        text = _("Deal {code} is scheduled: it will be posted at {time}.").format(
            code=code, time=local_times(deal.opens_at, targets.timezones)
        )
    await query.answer(_("Done."))
    await bot.send_message(user.id, text + "\n" + _("See and manage your deals with /deals."))


async def start_copy(
    bot: Bot,
    user_id: int,
    state: FSMContext,
    session: AsyncSession,
    admins: AdminDirectory,
    settings: Settings,
    spec: DealSpec,
    code: str,
) -> None:
    """Start the wizard from a copied deal: only the new closing time is asked, then the
    preview (Back reaches every other step, each offering to keep its value)."""
    draft = draft_from_spec(spec)
    owned = {g.id for g in await owned_groups(session, admins, user_id)}
    draft["group_ids"] = [g for g in draft["group_ids"] if g in owned]
    await state.set_data({"draft": draft, "quick": True})
    note = _("Copy of {code}: choose the new closing time.").format(code=code)
    step = "closes"
    if not draft["group_ids"]:
        note = _("Copy of {code}: choose the groups first.").format(code=code)
        step = "groups"
    await show_step(bot, user_id, step, state, session, admins, settings, note=note)


def router() -> Router:
    r = Router(name="deal_wizard")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")
    r.message.register(newdeal_command, Command("newdeal"))
    r.message.register(cancel_command, Command("cancel"), StateFilter(DealWizard))
    r.message.register(photo_sent, StateFilter(DealWizard.photo), F.photo)
    r.message.register(text_typed, StateFilter(DealWizard), F.text, ~F.text.startswith("/"))
    r.message.register(other_content, StateFilter(DealWizard), ~F.text)
    r.callback_query.register(wizard_button, WizardCB.filter())
    return r
