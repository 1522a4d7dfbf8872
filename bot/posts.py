"""A deal's post in its groups: the card with the live sign-up list (接龙), publishing it,
coalesced edits while people join, and the announcements when the deal closes.

- `render_card` builds the text and buttons in the current gettext locale (callers wrap it in
  `i18n.use_locale(group.language)`); it folds long lists so the text stays within Telegram's
  limits (4096 characters, 1024 for the caption of a photo post).
- `publish` sends the card into each target group once: a post is claimed in the database
  before it is sent (services.deals.claim_post), so two callers never both send it.
- `PostRefresher` coalesces edits: `touch(deal_id)` (sync, from the effects map of
  bot/effects.py) asks for an edit; at most one edit per deal per `interval` seconds runs,
  and it reads the state from the database when it runs, so the last edit always shows the
  final state. Sign-up lists are derived state, not promises: each post records when it
  was last rendered, and at start `catch_up()` re-renders every post whose deal changed
  after that (a crash between a commit and its edit loses nothing).
- `member_text` / `owner_text`: the closing notices (sent from the outbox, bot/notices.py).

Background work runs in tasks with a fresh context: they never join the transaction of the
update that started them, and they set the I18n context themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import zlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.methods import EditMessageCaption, EditMessageText, SendMessage, SendPhoto
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    SwitchInlineQueryChosenChat,
)
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _

from bot import bargain_cards, team_cards
from bot.sender import Sender
from handlers.callbacks import CardCB, DealCB, EventCB, WaitlistCB
from models import Database, Deal, DealPost, Group, InlineCard, OfflineEvent, Order, User
from services import bargains, gatherings, payments, reviews, teams
from services import deals as deal_service
from services import inline_cards as card_service
from services.deals import Closing
from services.locales import SUPPORTED_LANGUAGES, from_telegram
from services.reviews import Rating
from services.teams import TeamView
from services.timezones import utcnow
from views import event_texts
from views.bargain_texts import offer_line as bargain_offer_line
from views.deal_texts import pay_line
from views.format import (
    ALERT_LIMIT,
    CAPTION_LIMIT,
    TEXT_LIMIT,
    cut,
    duration,
    money,
    post_time,
    quote,
    tg_len,
)
from views.review_texts import rating_line
from views.team_texts import offer_line

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_LISTED = 30  # sign-up entries shown before "…and N more"
NAME_MAX = 32
QUANTITY_CHOICES = (1, 2, 3, 5)


# ---------------------------------------------------------------- rendering


def display_name(user: User | None) -> str:
    if user is None:
        return _("a member")
    return cut(user.full_name, NAME_MAX)


def _price_lines(deal: Deal, language: str) -> list[str]:
    current = deal_service.price_at(deal, deal.total_qty)
    if deal.status == "succeeded" and deal.final_price is not None:
        current = deal.final_price
    if current < deal.unit_price:
        was, now = (
            money(deal.unit_price, deal.currency, language),
            money(current, deal.currency, language),
        )
        shown = f"<s>{was}</s> <b>{now}</b>"
    else:
        shown = f"<b>{money(current, deal.currency, language)}</b>"
    lines = ["💰 " + _("{price} per unit").format(price=shown)]
    tiers = deal_service.tiers_of(deal)
    if tiers:
        ladder = " · ".join(
            f"≥{units} {money(price, deal.currency, language)}" for units, price in tiers
        )
        lines.append("🏷 " + _("Tier prices: {ladder}").format(ladder=ladder))
    return lines


def _progress_lines(deal: Deal, language: str) -> list[str]:
    lines = []
    if deal.min_kind and deal.min_value:
        missing = deal_service.missing_for_minimum(deal)
        have = deal.total_qty if deal.min_kind == "units" else deal.participants
        if missing == 0:
            lines.append("🎯 " + _("Minimum reached: the deal goes ahead"))
        elif deal.min_kind == "units":
            lines.append(
                "🎯 "
                + ngettext(
                    "{have}/{need} · {missing} more unit needed for the deal to go ahead",
                    "{have}/{need} · {missing} more units needed for the deal to go ahead",
                    missing,
                ).format(have=have, need=deal.min_value, missing=missing)
            )
        else:
            lines.append(
                "🎯 "
                + ngettext(
                    "{have}/{need} · {missing} more person needed for the deal to go ahead",
                    "{have}/{need} · {missing} more people needed for the deal to go ahead",
                    missing,
                ).format(have=have, need=deal.min_value, missing=missing)
            )
    upcoming = deal_service.next_tier(deal, deal.total_qty)
    if upcoming is not None:
        missing, price = upcoming
        lines.append(
            "📈 "
            + _("{have}/{need} · {missing} more to unlock {price}").format(
                have=deal.total_qty,
                need=deal.total_qty + missing,
                missing=missing,
                price=money(price, deal.currency, language),
            )
        )
    return lines


def _pay_line(deal: Deal) -> str:
    return pay_line(
        deal.pay_method,
        minimum=not payments.is_flash(deal),
        pay_hours=deal.pay_hours,
        hold_minutes=deal.hold_minutes,
    )


def _outcome_line(deal: Deal, language: str) -> str:
    if deal.status == "succeeded":
        price = money(deal.final_price or deal.unit_price, deal.currency, language)
        text = _("Closed: the deal succeeded at {price} per unit").format(price=price)
        return f"✅ <b>{text}</b>"
    if deal.status == "failed":
        have = deal.total_qty if deal.min_kind == "units" else deal.participants
        return (
            "❌ <b>"
            + _(
                "Closed: the deal did not reach its minimum ({have}/{need}); orders are cancelled"
            ).format(have=have, need=deal.min_value or 0)
            + "</b>"
        )
    return "🚫 <b>" + _("Cancelled by the organiser; orders are cancelled") + "</b>"


def _compose(
    deal: Deal,
    signups: Sequence[tuple[Order, User | None]],
    group: Group,
    now: datetime,
    shown: int,
    note_cap: int | None,
    private: bool = False,
    language: str | None = None,
    rating: Rating | None = None,
) -> str:
    language = language or group.language
    final = deal.status in deal_service.FINAL_STATES

    def note(text: str) -> str:
        return quote(cut(text, note_cap) if note_cap is not None else text.strip())

    lines = [f"🛒 <b>{quote(deal.title)}</b>"]
    if deal.description.strip() and note_cap != 0:
        lines.append(note(deal.description))
    lines.append("")
    lines += _price_lines(deal, language)
    if rating is not None and rating.count:  # reviews of the product (its family of deals)
        lines.append(rating_line(rating))
    if teams.offers_teams(deal):
        lines.append(offer_line(deal, language))
    if bargains.offers_bargains(deal):
        lines.append(bargain_offer_line(deal, language))
    if payments.is_paid(deal):  # cash deals say nothing: they are paid at pickup
        lines.append("💳 " + _pay_line(deal))
    if final:
        lines.append(_outcome_line(deal, language))
    else:
        if deal.status == "paused":
            lines.append("⏸ " + _("Paused by the organiser"))
        lines += _progress_lines(deal, language)
        if deal.stock_total is not None:
            lines.append(
                "📦 "
                + _("{left} of {total} left").format(
                    left=deal.stock_left or 0, total=deal.stock_total
                )
            )
        if deal.per_person_limit is not None:
            limit = deal.per_person_limit
            lines.append("👤 " + _("At most {limit} per person").format(limit=limit))
        if deal.status == "scheduled" and deal.opens_at > now:
            lines.append(
                "🕒 "
                + _("Opens {when}").format(when=post_time(deal.opens_at, group.timezone, language))
            )
        left = (deal.closes_at - now).total_seconds()
        if left > 0:
            lines.append(
                "⏰ "
                + _("Closes in {duration} · {when}").format(
                    duration=duration(left),
                    when=post_time(deal.closes_at, group.timezone, language),
                )
            )
        else:
            lines.append("⏰ " + _("Closing now"))
    if deal.pickup_note.strip() and note_cap != 0 and deal.status != "failed":
        lines.append("📍 " + note(deal.pickup_note))
    lines.append("")
    units = sum(order.quantity for order, _user in signups)
    if signups or not final:
        lines.append(
            "<b>"
            + _("Sign-up list")
            + "</b> · "
            + ngettext("{n} person", "{n} people", len(signups)).format(n=len(signups))
            + ", "
            + ngettext("{n} unit", "{n} units", units).format(n=units)
        )
    if not signups and not final:
        lines.append(_("Nobody yet: be the first!"))
    for index, (order, user) in enumerate(signups[:shown], start=1):
        team = {"team": " 👥", "bargain": " ✂️"}.get(order.offer or "", "")  # its offer
        lines.append(f"{index}. {quote(display_name(user))} ×{order.quantity}{team}")
    if len(signups) > shown:
        more = len(signups) - shown
        lines.append(ngettext("…and {n} more", "…and {n} more", more).format(n=more))
    lines.append("")
    code = f"<code>{deal.code}</code>"
    if final or private:  # /buy works in the group only
        lines.append(_("Code {code}").format(code=code))
    else:
        lines.append(
            _("Code {code} · order with {usage}").format(
                code=code, usage=f"<code>/buy {deal.code} 2</code>"
            )
        )
    return "\n".join(lines)


def render_card(
    deal: Deal,
    signups: Sequence[tuple[Order, User | None]],
    group: Group,
    now: datetime,
    *,
    limit: int | None = None,
    private: bool = False,
    language: str | None = None,
    event: OfflineEvent | None = None,
    rating: Rating | None = None,
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The post's text and buttons (None once the deal is closed), in the current locale.
    `event`: the deal is an offline event (services.gatherings): its post shows the event
    (place, local time, seats left, who is going) with Join / Cancel my place.

    Long content is folded to fit `limit` (default: 1024 for a photo caption, else 4096):
    first long notes are shortened, then fewer sign-up entries are listed. `private`: the
    text for a private chat (no /buy hint; the caller brings its own buttons). `language`:
    the language of money and times (default: the group's; an inline card: the reader's).
    `rating`: the reviews of the deal's product ("★ 4.6 (12 reviews)" when there are any).
    """
    limit = limit or (CAPTION_LIMIT if deal.photo_file_id else TEXT_LIMIT)
    if event is not None:
        text = event_texts.post_text(
            deal, event, signups, group, now, language or group.language, limit
        )
        return text, event_keyboard(deal)
    shown = min(len(signups), MAX_LISTED)
    note_cap: int | None = None
    while True:
        text = _compose(deal, signups, group, now, shown, note_cap, private, language, rating)
        if tg_len(text) <= limit:
            break
        if note_cap is None:
            note_cap = 300
        elif shown > 0:
            shown = shown * 3 // 4
        elif note_cap > 60:
            note_cap = 60
        elif note_cap > 0:
            note_cap = 0
        else:  # pragma: no cover - a title of at most 100 characters always fits
            break
    return text, keyboard(deal)


def order_rows(
    deal: Deal, pack: Callable[[str, int], str]
) -> list[list[InlineKeyboardButton]] | None:
    """The order buttons every place that shows a deal uses (group post, inline card, private
    card): Join +1, ×N within the limit and the stock, Cancel; `pack(action, qty)` makes each
    button's callback data. None once the deal is over."""
    if deal.status in deal_service.FINAL_STATES:
        return None

    def button(text: str, action: str, qty: int = 0) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text, callback_data=pack(action, qty))

    limit = deal.per_person_limit
    choices = [q for q in QUANTITY_CHOICES if limit is None or q <= limit]
    if deal.stock_total is not None:
        choices = [q for q in choices if q <= deal.stock_total]
    rows = [[button("🙋 " + _("Join +1"), "join")]]
    if len(choices) > 1:
        rows.append([button(f"×{q}", "qty", q) for q in choices])
    rows.append([button(_("Cancel my order"), "cancel")])
    return rows


def offer_rows(
    deal: Deal, rows: list[list[InlineKeyboardButton]], group_id: int = 0
) -> list[list[InlineKeyboardButton]]:
    """The order rows with the deal's offers: "Start a team" first, then "✂️ Bargain"; a deal
    for teams only has no buttons to buy alone (nor to bargain)."""
    offers = []
    if teams.offers_teams(deal):
        offers.append([team_cards.start_button(deal, group_id)])
    if bargains.offers_bargains(deal) and not deal.team_only:
        offers.append([bargain_cards.start_button(deal, group_id)])
    if not offers:
        return rows
    return [*offers, *([] if deal.team_only else rows)]


def keyboard(deal: Deal) -> InlineKeyboardMarkup | None:
    def pack(action: str, qty: int = 0) -> str:
        return DealCB(action=action, deal_id=deal.id, qty=qty).pack()

    rows = order_rows(deal, pack)
    if rows is None:
        return None
    rows = offer_rows(deal, rows)
    if deal.status == "open" and deal.stock_left == 0 and payments.is_paid(deal):
        waitlist = WaitlistCB(deal_id=deal.id).pack()
        rows.append([InlineKeyboardButton(text="⏳ " + _("Join waitlist"), callback_data=waitlist)])
    details = InlineKeyboardButton(text="ℹ️ " + _("Details"), callback_data=pack("info"))
    return InlineKeyboardMarkup(inline_keyboard=[*rows, [share_button(deal), details]])


def event_keyboard(deal: Deal) -> InlineKeyboardMarkup | None:
    """An event post's buttons: Join (a seat, or the waitlist when full) and Cancel my place
    (or leave the waitlist); none once sign-up is over."""
    if deal.status in deal_service.FINAL_STATES:
        return None

    def button(text: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=text, callback_data=EventCB(action=action, deal_id=deal.id).pack()
        )

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(event_texts.join_label(), "join")],
            [button(event_texts.cancel_label(), "cancel")],
        ]
    )


def share_button(deal: Deal) -> InlineKeyboardButton:
    """Share: Telegram's chat picker (people and groups) with `@<bot> D17` prepared, so a
    member drops the deal's live card into another chat in two taps (handlers.inline)."""
    return InlineKeyboardButton(
        text="📤 " + _("Share"),
        switch_inline_query_chosen_chat=SwitchInlineQueryChosenChat(
            query=deal.code,
            allow_user_chats=True,
            allow_group_chats=True,
            allow_bot_chats=False,
            allow_channel_chats=False,
        ),
    )


def card_keyboard(deal: Deal, code: str, details_url: str) -> InlineKeyboardMarkup | None:
    """The buttons of an inline card (any chat): the order buttons carrying the sharer's
    code, and Details: the share link, opening the deal in private (handlers.share)."""
    rows = order_rows(deal, lambda action, qty: CardCB(action=action, code=code, qty=qty).pack())
    if rows is None:
        return None
    details = InlineKeyboardButton(text="ℹ️ " + _("Details"), url=details_url)
    return InlineKeyboardMarkup(inline_keyboard=[*rows, [details]])


def render_inline_card(
    deal: Deal,
    signups: Sequence[tuple[Order, User | None]],
    group: Group,
    now: datetime,
    *,
    language: str,
    code: str,
    bot_username: str | None,
) -> tuple[str, InlineKeyboardMarkup | None]:
    """An inline card: the group post's content (no /buy hint: that works in the group only)
    with the card's buttons, in the current locale (`language`: money and times)."""
    text, _group_buttons = render_card(deal, signups, group, now, private=True, language=language)
    return text, card_keyboard(deal, code, share_link(bot_username, code))


def details_text(deal: Deal) -> str:
    """The Details alert (plain text, at most 200 characters)."""
    parts = [deal.description.strip() or deal.title]
    if deal.pickup_note.strip():
        parts.append("📍 " + deal.pickup_note.strip())
    return cut("\n".join(parts), ALERT_LIMIT)


def share_link(bot_username: str | None, payload: str) -> str:
    return f"https://t.me/{bot_username}?start={payload}"


def share_text(deal: Deal, link: str) -> str:
    """The Share button's answer: the member's own link (t.me/<bot>?start=<code>)."""
    head = _("Share {code}: {link}").format(code=deal.code, link=link)
    return cut(f"{head}\n{deal.title}", ALERT_LIMIT)


# ---------------------------------------------------------------- sending
# Everything here goes through bot.sender.Sender: limits, 429 waits, retries, 403 (chat marked
# inactive), supergroup migrations and the record of failed sends live there.


async def _send_card(sender: Sender, deal: Deal, chat_id: int, text: str, markup) -> Message | None:
    if deal.photo_file_id:
        method: Any = SendPhoto(
            chat_id=chat_id, photo=deal.photo_file_id, caption=text, reply_markup=markup
        )
    else:
        method = SendMessage(chat_id=chat_id, text=text, reply_markup=markup)
    return await sender.send(method, chat_id=chat_id)


def shop_url(bot_username: str | None, shop_app: str | None, code: str | None) -> str | None:
    """The Mini App storefront of a group: t.me/<bot>/<app>?startapp=<the group's code>."""
    if not (bot_username and shop_app and code):
        return None
    return f"https://t.me/{bot_username}/{shop_app}?startapp={code}"


def with_shop(markup: InlineKeyboardMarkup | None, url: str | None) -> InlineKeyboardMarkup | None:
    """The post's buttons with 🛍 Shop (a URL button: web_app buttons work only in private
    chats) last, while the deal takes orders and the Mini App is set up."""
    if markup is None or url is None:
        return markup
    shop = InlineKeyboardButton(text="🛍 " + _("Shop"), url=url)
    return InlineKeyboardMarkup(inline_keyboard=[*markup.inline_keyboard, [shop]])


async def publish(
    bot: Bot,
    db: Database,
    i18n: I18n,
    deal_id: int,
    *,
    sender: Sender,
    shop: str | None = None,
) -> int:
    """Post the deal's card into each of its groups that has no post yet; returns posts sent.

    Only open (or paused) deals are posted; a scheduled deal is posted when it opens. Each
    post is claimed in the database before sending, so concurrent callers never double it;
    a failed send gives the claim back (a later run retries); the sender waits out 429s,
    follows supergroup migrations and marks a group that refuses the bot (403) inactive.
    """
    now = utcnow()
    async with db.read() as session:
        try:
            deal = await deal_service.get(session, deal_id)
        except deal_service.DealNotFound:
            return 0
        if deal.status not in ("open", "paused"):
            return 0
        signups = await deal_service.sign_up_list(session, deal_id)
        event = await gatherings.get(session, deal_id)
        rating = await reviews.rating_of(session, deal)
        targets = [
            (post.group_id, group)
            for post, group in await deal_service.posts(session, deal_id)
            if post.message_id is None and group.is_active
        ]
    sent = 0
    bot_username = (await bot.me()).username if shop and targets else None
    for group_id, group in targets:
        async with db.transaction() as session:
            if not await deal_service.claim_post(session, deal_id, group_id, utcnow()):
                continue
        with i18n.context(), i18n.use_locale(group.language):
            text, markup = render_card(deal, signups, group, now, event=event, rating=rating)
            markup = with_shop(markup, shop_url(bot_username, shop, group.shop_code))
        chat_id = group.chat_id
        try:
            message = await _send_card(sender, deal, chat_id, text, markup)
        except Exception:
            log.exception("deal %s: post to chat %s failed", deal_id, chat_id)
            message = None
        if message is None:
            log.warning("deal %s: post to chat %s not sent; claim released", deal_id, chat_id)
            async with db.transaction() as session:
                await deal_service.release_post(session, deal_id, group_id)
            continue
        async with db.transaction() as session:
            await deal_service.store_post(session, deal_id, group_id, message.message_id, utcnow())
            await deal_service.mark_rendered(session, deal_id, [group_id], deal.updated_at)
        log.info(
            "deal %s posted to chat %s as message %s", deal_id, message.chat.id, message.message_id
        )
        sent += 1
    return sent


# Telegram's answers to an edit of an inline card that can never succeed: the card was
# deleted, or is too old to edit. Such a card is dropped (never tried again).
CARD_GONE = (
    "message can't be edited",
    "message_id_invalid",
    "message to edit not found",
    "message not found",
)
CARD_KEY_BASE = -(2**61)  # sender keys of inline cards: no real chat, no pseudonym


def card_key(inline_message_id: str) -> int:
    """The sender's key for a card (the chat it was sent to is unknown): one window per
    card, like a chat of its own."""
    return CARD_KEY_BASE - zlib.crc32(inline_message_id.encode())


def card_language(sharer: User | None, group: Group) -> str:
    """A card is shown in its sharer's language (the one they searched in)."""
    if sharer is not None:
        if sharer.language in SUPPORTED_LANGUAGES:
            return sharer.language
        guessed = from_telegram(sharer.language_code)
        if guessed:
            return guessed
    return group.language


def _card_gone(reason: str | None) -> bool:
    text = (reason or "").lower()
    return any(marker in text for marker in CARD_GONE)


@dataclass
class DealState:
    """What one refresh of a deal shows, read once for its posts and its cards: the deal,
    its posts (with their groups), its sign-up list and its live inline cards (with their
    sharers)."""

    deal: Deal
    posts: list[tuple[DealPost, Group]]
    signups: list[tuple[Order, User | None]]
    cards: list[tuple[InlineCard, User | None]]
    teams: list[TeamView] = field(default_factory=list)
    event: OfflineEvent | None = None  # an offline event's deal (services.gatherings)
    rating: Rating | None = None  # the reviews of its product (services.reviews)


async def read_states(db: Database, deal_ids: Sequence[int]) -> dict[int, DealState]:
    """The state of several deals in a few statements however many there are (deals with
    their posts and groups; every sign-up list; every live card with its sharer; their
    reviews' figures). The deal
    is read first: a change committed meanwhile can only make a post show a newer state
    than the version it records (so it is rendered again), never an older one."""
    ids = list(dict.fromkeys(deal_ids))
    async with db.read() as session:
        posted = await deal_service.posted_deals(session, ids)
        if not posted:
            return {}
        found = list(posted)
        signups = await deal_service.sign_up_lists(session, found)
        cards = await card_service.live_of(session, found)
        team_views = await teams.cards_of(session, found)
        event_rows = await gatherings.of_deals(session, found)
        ratings = await reviews.ratings_of(session, [p.deal for p in posted.values()])
    return {
        deal_id: DealState(
            p.deal,
            p.posts,
            signups[deal_id],
            cards[deal_id],
            team_views.get(deal_id, []),
            event_rows.get(deal_id),
            ratings.get(deal_id),
        )
        for deal_id, p in posted.items()
    }


@dataclass
class Edited:
    """What the edits of one deal did: edits sent, and what to record afterwards."""

    posts: int = 0
    cards: int = 0
    settled_posts: list[int] = field(default_factory=list)  # group ids
    settled_cards: list[str] = field(default_factory=list)  # inline message ids
    gone_cards: list[str] = field(default_factory=list)
    teams: team_cards.Shown = field(default_factory=team_cards.Shown)


async def _edit_posts(
    state: DealState,
    i18n: I18n,
    read_at: datetime,
    sender: Sender,
    done: Edited,
    shop: tuple[str | None, str | None] = (None, None),
) -> None:
    """Edit every post of the deal to `state`. Each post edited (or whose edit can never
    succeed: deleted, 400) is settled: it records the version of the deal it shows."""
    deal = state.deal
    rendered: dict[tuple[str, str], tuple[str, InlineKeyboardMarkup | None]] = {}
    for post, group in state.posts:
        if post.message_id is None or not group.is_active:
            continue
        key = (group.language, group.timezone)  # all a post's text depends on, beside the deal
        if key not in rendered:
            with i18n.context(), i18n.use_locale(group.language):
                rendered[key] = render_card(
                    deal, state.signups, group, read_at, event=state.event, rating=state.rating
                )
        text, markup = rendered[key]
        url = shop_url(shop[0], shop[1], group.shop_code)
        if url is not None:
            with i18n.context(), i18n.use_locale(group.language):
                markup = with_shop(markup, url)
        chat_id = group.chat_id
        if deal.photo_file_id:
            method: Any = EditMessageCaption(
                chat_id=chat_id, message_id=post.message_id, caption=text, reply_markup=markup
            )
        else:
            method = EditMessageText(
                chat_id=chat_id, message_id=post.message_id, text=text, reply_markup=markup
            )
        outcome = await sender.deliver(method, chat_id=chat_id)
        if outcome.ok:  # "not modified" is shown too
            done.posts += 1
        if outcome.ok or not outcome.transient:
            done.settled_posts.append(group.id)


async def _edit_cards(
    state: DealState,
    i18n: I18n,
    read_at: datetime,
    sender: Sender,
    bot_username: str | None,
    done: Edited,
) -> None:
    """Edit every live inline card of the deal to `state` (closed: no buttons). A card
    Telegram refuses to edit for good is dropped; "not modified" is success; a transient
    failure is tried at the next change (or start)."""
    deal = state.deal
    groups = {g.id: g for _post, g in state.posts}
    texts: dict[tuple[str, str], str] = {}
    for card, sharer in state.cards:
        group = groups.get(card.group_id)
        mid = card.inline_message_id
        if group is None:  # the deal is no longer posted in the card's group
            done.settled_cards.append(mid)
            continue
        language = card_language(sharer, group)
        code = card.share_code or "-"
        with i18n.context(), i18n.use_locale(language):
            key = (language, group.timezone)
            if key not in texts:
                texts[key] = render_card(
                    deal,
                    state.signups,
                    group,
                    read_at,
                    private=True,
                    language=language,
                    rating=state.rating,
                )[0]
            text = texts[key]
            markup = card_keyboard(deal, code, share_link(bot_username, code))
        if card.share_code is None:  # its sharer used /forgetme: the text, no buttons
            markup = None
        if deal.photo_file_id:
            method: Any = EditMessageCaption(
                inline_message_id=mid, caption=text, reply_markup=markup
            )
        else:
            method = EditMessageText(inline_message_id=mid, text=text, reply_markup=markup)
        outcome = await sender.deliver(method, chat_id=card_key(mid))
        if outcome.ok:
            done.cards += 1
            done.settled_cards.append(mid)
        elif outcome.refused or _card_gone(outcome.reason):
            done.gone_cards.append(mid)
        elif not outcome.transient:
            done.settled_cards.append(mid)


async def edit_deals(
    bot: Bot,
    db: Database,
    i18n: I18n,
    deal_ids: Sequence[int],
    *,
    sender: Sender,
    shop: str | None = None,
) -> dict[int, Edited]:
    """Edit every post and live inline card of these deals to their current state (read
    now, once for all of them); the deals' edits run side by side, each deal's in turn.
    Afterwards one transaction records what each post and card shows (and drops the cards
    Telegram refuses for good). Returns what was done per deal (a deal not found: absent)."""
    read_at = utcnow()
    states = await read_states(db, deal_ids)
    if not states:
        return {}
    bot_username = None
    if shop or any(state.cards or state.teams for state in states.values()):
        bot_username = (await bot.me()).username

    async def one(state: DealState) -> Edited:
        done = Edited()
        deal_id = state.deal.id
        try:
            await _edit_posts(state, i18n, read_at, sender, done, (bot_username, shop))
        except Exception:
            log.exception("deal %s: refreshing its posts failed", deal_id)
        try:
            await _edit_cards(state, i18n, read_at, sender, bot_username, done)
        except Exception:
            log.exception("deal %s: refreshing its inline cards failed", deal_id)
        try:
            posts = {post.group_id: post for post, _group in state.posts}
            await team_cards.edit_teams(
                db, state.teams, posts, i18n, read_at, sender, bot_username, done.teams
            )
        except Exception:
            log.exception("deal %s: refreshing its team cards failed", deal_id)
        return done

    results = await asyncio.gather(*(one(state) for state in states.values()))
    edited = {state.deal.id: done for state, done in zip(states.values(), results, strict=True)}
    posts_shown = [
        (deal_id, done.settled_posts, states[deal_id].deal.updated_at)
        for deal_id, done in edited.items()
        if done.settled_posts
    ]
    cards_shown = [
        (done.settled_cards, states[deal_id].deal.updated_at)
        for deal_id, done in edited.items()
        if done.settled_cards
    ]
    gone = [mid for done in edited.values() for mid in done.gone_cards]
    teams_posted = [posted for done in edited.values() for posted in done.teams.posted]
    teams_shown = [
        (done.teams.settled, states[deal_id].deal.updated_at)
        for deal_id, done in edited.items()
        if done.teams.settled
    ]
    if posts_shown or cards_shown or gone or teams_posted or teams_shown:
        try:
            async with db.transaction() as session:
                await deal_service.mark_rendered_many(session, posts_shown)
                await card_service.settle(session, cards_shown, gone, utcnow())
                await teams.store_cards(session, teams_posted, teams_shown)
        except Exception:  # the posts stay behind their deal: caught up at the next change
            log.exception("deals %s: recording their refreshed posts failed", sorted(edited))
    return edited


class PostRefresher:
    """Coalesced edits of deal posts: at most one edit per deal per `interval` seconds, each
    showing the state read from the database when it runs; a change after an edit started
    leads to one more edit, so the final state is always shown.

    Deals due at the same moment (within `gather` seconds) are refreshed together: one read
    of all their states, one transaction recording what their posts and cards show
    (edit_deals). A batch's deals get one common time of their last edit, so deals that
    keep changing stay due together."""

    def __init__(
        self,
        bot: Bot,
        db: Database,
        i18n: I18n,
        *,
        sender: Sender,
        interval: float = 2.5,
        shop: str | None = None,
    ) -> None:
        self.bot = bot
        self.shop = shop  # the Mini App's short name when posts carry 🛍 Shop (else None)
        self.db = db
        self.i18n = i18n
        self.interval = interval
        self.sender = sender
        self.edits = 0  # edit requests sent (for logs, tests and benchmarks)
        self.card_edits = 0  # of them, edits of inline cards
        self._dirty: set[int] = set()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._last: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._gathering: dict[int, asyncio.Future[None]] | None = None
        self._closed = False

    @property
    def gather(self) -> float:
        """How long a due deal waits for others to come due (a small part of `interval`)."""
        return min(0.02, self.interval / 20)

    # -- called from the effects map (synchronous, inside the event loop)

    def touch(self, deal_id: int) -> None:
        """The deal changed: its posts will show it within `interval` seconds."""
        if self._closed:
            return
        self._dirty.add(deal_id)
        if deal_id not in self._tasks:
            self._tasks[deal_id] = self._create(self._run(deal_id))

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `coro` in the background (outside any transaction); flush() waits for it."""
        task = self._create(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def publish_soon(self, deal_id: int) -> None:
        """Post the deal into its groups (outside the transaction that opened it)."""
        if not self._closed:
            self.spawn(
                publish(self.bot, self.db, self.i18n, deal_id, sender=self.sender, shop=self.shop)
            )

    @staticmethod
    def _create(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        # A fresh context: the task must not join the transaction of the update that started it.
        return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())

    # -- the work

    async def _run(self, deal_id: int) -> None:
        try:
            while deal_id in self._dirty:
                wait = self._last.get(deal_id, float("-inf")) + self.interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._dirty.discard(deal_id)
                await self._refresh_together(deal_id)
        finally:
            self._tasks.pop(deal_id, None)
            self._prune()

    async def _refresh_together(self, deal_id: int) -> None:
        """Refresh the deal in the batch of every deal that comes due with it."""
        batch = self._gathering
        if batch is None:
            batch = self._gathering = {}
            self.spawn(self._refresh_batch(batch))
        waiter = batch.get(deal_id)
        if waiter is None:
            waiter = batch[deal_id] = asyncio.get_running_loop().create_future()
        await waiter

    async def _refresh_batch(self, batch: dict[int, asyncio.Future[None]]) -> None:
        try:
            await asyncio.sleep(self.gather)
            if self._gathering is batch:
                self._gathering = None
            await self.refresh_many(list(batch))
        finally:
            if self._gathering is batch:
                self._gathering = None
            for waiter in batch.values():
                if not waiter.done():
                    waiter.set_result(None)

    async def refresh_many(self, deal_ids: Sequence[int]) -> dict[int, int]:
        """Edit the posts and cards of these deals now, with one read and one write for all
        of them (edit_deals). Returns edits sent per deal."""
        ids = sorted(set(deal_ids))  # locks taken in one order: batches never deadlock
        locks = [self._locks.setdefault(deal_id, asyncio.Lock()) for deal_id in ids]
        async with contextlib.AsyncExitStack() as held:
            for lock in locks:
                await held.enter_async_context(lock)
            edited: dict[int, Edited] = {}
            try:
                edited = await edit_deals(
                    self.bot, self.db, self.i18n, ids, sender=self.sender, shop=self.shop
                )
            except Exception:
                log.exception("deals %s: refreshing their posts failed", ids)
            finally:
                done_at = time.monotonic()
                for deal_id in ids:
                    self._last[deal_id] = done_at
            for done in edited.values():
                self.edits += done.posts + done.cards + done.teams.edits
                self.card_edits += done.cards
            return {
                deal_id: done.posts + done.cards + done.teams.edits
                for deal_id, done in edited.items()
            }

    def _prune(self) -> None:
        if len(self._last) < 512:
            return
        horizon = time.monotonic() - self.interval
        for deal_id, at in list(self._last.items()):
            if at < horizon and deal_id not in self._tasks:
                del self._last[deal_id]
                lock = self._locks.get(deal_id)
                if lock is not None and not lock.locked():
                    del self._locks[deal_id]

    async def catch_up(self) -> int:
        """At start: re-render every post and inline card whose deal changed after its last
        render (the process that committed the change may have died before editing).
        Returns how many deals were touched."""
        async with self.db.read() as session:
            stale = await deal_service.stale_posts(session)
            cards = await card_service.stale(session)
            team_cards_behind = await teams.stale(session)
        stale = list(dict.fromkeys([*stale, *cards, *team_cards_behind]))
        for deal_id in stale:
            self.touch(deal_id)
        if stale:
            log.info("%d deals' posts are behind their state; re-rendering", len(stale))
        return len(stale)

    async def flush(self) -> None:
        """Wait until every pending edit and background task is done."""
        while True:
            pending = [t for t in (*self._tasks.values(), *self._background) if not t.done()]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop taking work, finish what is pending (within `timeout`), cancel the rest."""
        self._closed = True
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            log.warning("post refresher closed with work pending")
        for task in (*self._tasks.values(), *self._background):
            task.cancel()


# ---------------------------------------------------------------- closing


def member_text(closing: Closing, order: Order, language: str) -> str:
    deal = closing.deal
    title = quote(deal.title)
    if closing.outcome == "succeeded":
        price = order.unit_price if order.unit_price is not None else deal.final_price or 0
        amount = order.amount if order.amount is not None else order.quantity * price
        lines = [
            "✅ "
            + _("{title} ({code}) succeeded! Your order: {quantity} × {price} = {amount}.").format(
                title=title,
                code=deal.code,
                quantity=order.quantity,
                price=money(price, deal.currency, language),
                amount=f"<b>{money(amount, deal.currency, language)}</b>",
            ),
            _("Pickup code: {code}").format(code=f"<code>{order.pickup_code}</code>"),
        ]
        if order.coupon_discount:
            lines.append(
                "🎟 "
                + _("Coupon: −{amount} (/coupons to choose another)").format(
                    amount=money(order.coupon_discount, deal.currency, language)
                )
            )
        if deal.pickup_note.strip():
            lines.append("📍 " + quote(deal.pickup_note.strip()))
        return "\n".join(lines)
    if closing.outcome == "failed":
        return "❌ " + _(
            "{title} ({code}) did not reach its minimum; your order (×{quantity}) is cancelled. "
            "You pay nothing."
        ).format(title=title, code=deal.code, quantity=order.quantity)
    return "🚫 " + _(
        "{title} ({code}) was cancelled by the organiser; your order (×{quantity}) is "
        "cancelled. You pay nothing."
    ).format(title=title, code=deal.code, quantity=order.quantity)


def owner_text(closing: Closing, language: str) -> str:
    deal = closing.deal
    title = quote(deal.title)
    people = len(closing.orders)
    units = sum(o.quantity for o in closing.orders)
    revenue = sum(o.amount or 0 for o in closing.orders if o.status == "confirmed")
    if closing.outcome == "succeeded":
        head = "✅ " + _("{code} «{title}» closed: it succeeded at {price} per unit.").format(
            code=deal.code, title=title, price=money(deal.final_price or 0, deal.currency, language)
        )
    elif closing.outcome == "failed":
        have = deal.total_qty if deal.min_kind == "units" else deal.participants
        head = "❌ " + _(
            "{code} «{title}» closed: it did not reach its minimum ({have}/{need}); "
            "all orders are cancelled."
        ).format(code=deal.code, title=title, have=have, need=deal.min_value or 0)
    else:
        head = "🚫 " + _("{code} «{title}» was cancelled; all orders are cancelled.").format(
            code=deal.code, title=title
        )
    return "\n".join(
        [
            head,
            _("Participants: {people} · units: {units}").format(people=people, units=units),
            _("Revenue: {amount}").format(
                amount=f"<b>{money(revenue, deal.currency, language)}</b> ({deal.currency})"
            ),
        ]
    )
