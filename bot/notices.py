"""Rendering the outbox's rows (services.notices promises them) into Telegram methods, in
the recipient's language, at the moment they are sent.

`RENDERERS` maps a row's kind to a function of (context, payload) that reads what it needs
and returns the method to send, or None when there is nothing to say any more (the order
or the deal is gone). The language is the recipient's (services.locales.recipient_language):
their own choice, else the language of the group the notice is about, else the default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from aiogram import Bot
from aiogram.methods import (
    EditMessageText,
    RevokeChatInviteLink,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.types import BufferedInputFile, ReplyParameters
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession

from bot import event_notices, lottery_notices, moderation_notices, payment_notices, poll_notices
from bot.posts import member_text, owner_text, share_link
from bot.review_cards import invite_keyboard
from models import Bargain, Coupon, CouponClaim, Database, Group, Review, Team
from services import bargains as bargain_service
from services import coupons as coupon_service
from services import deals as deal_service
from services import digest as digest_service
from services import notice_reads
from services import reviews as review_service
from services import teams as team_service
from services.deals import Closing
from services.digest import Period
from services.errors import DomainError
from services.locales import recipient_language
from services.outbox import Claimed
from views import digest_texts
from views.bargain_texts import note_text as bargain_note_text
from views.coupon_texts import pack_note_text
from views.credit_texts import change_notice, see_balance
from views.format import quote
from views.invites import admin_notice
from views.notices import (
    added_text,
    closing_post_text,
    fulfilment_text,
    refund_text,
    reminder_text,
)
from views.review_texts import invite_text, reply_post
from views.team_texts import note_text as team_note_text

MAX_TEXT = 4096
PICKUP_PREFIX = "orders_D"  # /start orders_D<deal>: the member's order of that deal (share.py)


def pickup_payload(deal_id: int) -> str:
    return f"{PICKUP_PREFIX}{deal_id}"


@dataclass
class Context:
    session: AsyncSession
    bot: Bot
    row: Claimed
    language: str
    provider_token: str = ""  # the payment provider's (card invoices)
    timezone: str = "UTC"  # the deployment's default (a notice about no group)


Renderer = Callable[[Context, dict[str, Any]], Awaitable[TelegramMethod[Any] | None]]


def _text(ctx: Context, text: str) -> SendMessage:
    return SendMessage(chat_id=ctx.row.chat_id, text=text)


async def closing_member(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    found = await notice_reads.deal_and_order(ctx.session, payload["deal_id"], payload["order_id"])
    if found is None:
        return None
    deal, order = found
    closing = Closing(deal, payload.get("outcome", deal.status), [order])
    return _text(ctx, member_text(closing, order, ctx.language))


async def closing_owner(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    try:
        closing = await deal_service.closing_of(ctx.session, payload["deal_id"])
    except DomainError:  # the deal is gone
        return None
    return _text(ctx, owner_text(closing, ctx.language))


async def fulfilment(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    found = await notice_reads.order_with_deal(ctx.session, payload["order_id"])
    if found is None:
        return None
    order, deal = found
    return _text(ctx, fulfilment_text(deal, order, payload["state"], ctx.language))


async def refund(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    found = await notice_reads.order_with_deal(ctx.session, payload["order_id"])
    if found is None:
        return None
    order, deal = found
    return _text(ctx, refund_text(deal, order))


async def credit(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    lines = []
    for entry, deal, group in await notice_reads.credit_lines(ctx.session, payload["entry_ids"]):
        lines.append(change_notice(entry, deal, group, ctx.language))
    if not lines:
        return None
    tail = see_balance()
    kept, size = [], len(tail) + 3
    for line in lines:  # within Telegram's 4096 characters; the rest is in /mycredit
        if size + len(line) + 1 > MAX_TEXT:
            kept.append("…")
            break
        kept.append(line)
        size += len(line) + 1
    return _text(ctx, "\n".join(kept) + "\n" + tail)


async def rights(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    group = await notice_reads.group(ctx.session, payload["group_id"])
    if group is None or not group.is_active:
        return None
    me = await ctx.bot.me()
    bot_name = f"@{me.username}" if me.username else quote(me.first_name)
    return _text(ctx, admin_notice(payload["reason"], quote(group.title), bot_name))


async def revoke_link(ctx: Context, payload: dict[str, Any]) -> RevokeChatInviteLink:
    return RevokeChatInviteLink(chat_id=ctx.row.chat_id, invite_link=payload["link"])


async def edit_text(ctx: Context, payload: dict[str, Any]) -> EditMessageText:
    return EditMessageText(
        chat_id=ctx.row.chat_id, message_id=payload["message_id"], text=payload["text"]
    )


async def reminder(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    try:
        deal = await deal_service.get(ctx.session, payload["deal_id"])
    except DomainError:
        return None
    group = await notice_reads.group(ctx.session, ctx.row.group_id or 0)
    if group is None or deal.status not in deal_service.OPEN_STATES:
        return None  # closed meanwhile: a reminder would be wrong now
    at = datetime.fromisoformat(payload["at"])
    return SendMessage(
        chat_id=ctx.row.chat_id,
        text=reminder_text(deal, group, at),
        reply_parameters=ReplyParameters(
            message_id=payload["message_id"], allow_sending_without_reply=True
        ),
    )


async def closing_post(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    """The closing's outcome as a reply to the deal's post (a deleted post: sent anyway)."""
    try:
        deal = await deal_service.get(ctx.session, payload["deal_id"])
    except DomainError:
        return None
    group = await notice_reads.group(ctx.session, ctx.row.group_id or 0)
    if group is None or not group.is_active:
        return None
    outcome = deal.status if deal.status in deal_service.FINAL_STATES else payload["outcome"]
    me = await ctx.bot.me()
    link = share_link(me.username, pickup_payload(deal.id))
    return SendMessage(
        chat_id=ctx.row.chat_id,
        text=closing_post_text(deal, outcome, link),
        reply_parameters=ReplyParameters(
            message_id=payload["message_id"], allow_sending_without_reply=True
        ),
    )


async def added_note(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    """To whoever added the bot to a group (perhaps long after, at their first /start)."""
    group = await notice_reads.group(ctx.session, payload["group_id"])
    if group is None or not group.is_active:
        return None  # removed again meanwhile: nothing to set up
    return _text(ctx, added_text(group.title))


async def _group_digest(ctx: Context, payload: dict[str, Any]):
    group = await notice_reads.group(ctx.session, payload["group_id"])
    if group is None:
        return None
    day = date.fromisoformat(payload["day"])
    at = datetime.fromisoformat(payload["at"])
    return await digest_service.build(ctx.session, group, Period(day, day), at)


async def digest_text(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    if payload.get("group_id") is None:  # the operators' digest
        at = datetime.fromisoformat(payload["at"])
        return _text(
            ctx, digest_texts.admin_text(await digest_service.build_admin(ctx.session, at))
        )
    digest = await _group_digest(ctx, payload)
    return _text(ctx, digest_texts.group_text(digest)) if digest is not None else None


async def digest_chart(ctx: Context, payload: dict[str, Any]) -> SendPhoto | None:
    digest = await _group_digest(ctx, payload)
    if digest is None:
        return None
    png = await digest_texts.group_chart(digest)
    return SendPhoto(
        chat_id=ctx.row.chat_id,
        photo=BufferedInputFile(png, filename="digest.png"),
        caption=quote(digest_texts.chart_title(digest)),
    )


async def coupon_note(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    """A coupon pack's reward (services.coupons): the claim given to this person."""
    claim = await ctx.session.get(CouponClaim, payload["claim_id"])
    coupon = await ctx.session.get(Coupon, claim.coupon_id) if claim is not None else None
    if claim is None or coupon is None:
        return None
    group = await ctx.session.get(Group, coupon.group_id)
    return _text(ctx, pack_note_text(coupon, claim, group, ctx.language))


async def team_note(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    """A team buy's note to one member (services.teams): started, filled, expired, closed."""
    team = await ctx.session.get(Team, payload["team_id"])
    if team is None:
        return None
    view = await team_service.view(ctx.session, team)
    mine = next((o for o, _user in view.members if o.user_id == ctx.row.chat_id), None)
    me = await ctx.bot.me()
    link = share_link(me.username, team_service.link_payload(team))
    return _text(ctx, team_note_text(view, payload["what"], mine, ctx.language, link))


async def bargain_note(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    """A bargain's note to its starter (services.bargains): help, bought, expired, closed."""
    bargain = await ctx.session.get(Bargain, payload["bargain_id"])
    if bargain is None:
        return None
    view = await bargain_service.view(ctx.session, bargain)
    order = None
    if payload["what"] == "bought":
        order = await bargain_service.order_of(ctx.session, bargain.id)
    me = await ctx.bot.me()
    link = share_link(me.username, bargain_service.link_payload(bargain))
    return _text(ctx, bargain_note_text(view, payload["what"], order, ctx.language, link))


async def review_invite(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    """The invitation to rate an order (services.reviews.invite), with its star buttons;
    nothing once the order is no longer reviewable (refunded) or already reviewed."""
    found = await notice_reads.order_with_deal(ctx.session, payload["order_id"])
    if found is None:
        return None
    order, deal = found
    if order.status != "confirmed" or order.fulfilment not in review_service.RECEIVED:
        return None
    if await ctx.session.scalar(review_service.exists_for(order.id)):
        return None
    return SendMessage(
        chat_id=ctx.row.chat_id, text=invite_text(deal), reply_markup=invite_keyboard(order)
    )


async def review_reply(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    """The organiser's reply, as a reply to the deal's post (a removed review: nothing)."""
    review = await ctx.session.get(Review, payload["review_id"])
    if review is None or review.reply_text is None:
        return None
    try:
        deal = await deal_service.get(ctx.session, review.deal_id)
    except DomainError:
        return None
    group = await notice_reads.group(ctx.session, ctx.row.group_id or 0)
    if group is None or not group.is_active:
        return None
    return SendMessage(
        chat_id=ctx.row.chat_id,
        text=reply_post(deal, review),
        reply_parameters=ReplyParameters(
            message_id=payload["message_id"], allow_sending_without_reply=True
        ),
    )


RENDERERS: dict[str, Renderer] = {
    "digest_text": digest_text,
    "digest_chart": digest_chart,
    "reminder": reminder,
    "edit_text": edit_text,
    "closing_member": closing_member,
    "closing_owner": closing_owner,
    "closing_post": closing_post,
    "added_note": added_note,
    "fulfilment": fulfilment,
    "refund": refund,
    "credit": credit,
    "rights": rights,
    "revoke_link": revoke_link,
    team_service.NOTE: team_note,
    bargain_service.NOTE: bargain_note,
    coupon_service.NOTE: coupon_note,
    review_service.INVITE: review_invite,
    review_service.REPLY: review_reply,
    **payment_notices.RENDERERS,
    **poll_notices.RENDERERS,
    **lottery_notices.RENDERERS,
    **event_notices.RENDERERS,
    **moderation_notices.RENDERERS,
}
AFTER = payment_notices.AFTER  # kinds whose outcome is recorded when the row is settled
# ... and kinds that record what Telegram answered (a sent poll or challenge, a stopped poll)
SETTLED = {**poll_notices.SETTLED, **moderation_notices.SETTLED}


async def render(
    db: Database,
    bot: Bot,
    i18n: I18n,
    row: Claimed,
    *,
    provider_token: str = "",
    timezone: str = "UTC",
) -> TelegramMethod[Any] | None:
    """The method that delivers `row`, made in its recipient's language now."""
    renderer = RENDERERS[row.kind]
    async with db.read() as session:
        user, group = await notice_reads.recipient(session, row.chat_id, row.group_id)
        language = recipient_language(user, group, i18n.default_locale)
        with i18n.context(), i18n.use_locale(language):
            ctx = Context(session, bot, row, language, provider_token, timezone)
            return await renderer(ctx, row.payload)
