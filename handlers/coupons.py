"""Coupons (services.coupons): the owner's `/coupon` (create, end, list) in private chat, the
members' `/coupons` (in a group: its coupons with Claim buttons; in private: coupons to
claim, one's own, switching an order's coupon, one's pack links), the Claim and Use buttons,
and `/start pack_<code>` (a friend opens a coupon pack).

Refusals are domain errors, answered by the errors router (views.coupon_texts)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from bot.posts import share_link
from handlers.callbacks import CouponCB
from models import Coupon, User
from services import coupons, people
from services import groups as group_service
from services.admins import AdminDirectory
from services.parsing import ParseError, parse_int
from services.timezones import Clock
from views.common import current_language
from views.coupon_texts import (
    claim_label,
    claimed_text,
    coupon_error_text,
    created_text,
    ended_text,
    group_text,
    member_text,
    none_label,
    owner_text,
    pack_opened_text,
    switch_label,
    switched_text,
    usage_text,
)


def _claim_keyboard(listed: list[Coupon]) -> InlineKeyboardMarkup | None:
    if not listed:
        return None
    builder = InlineKeyboardBuilder()
    language = current_language()
    for coupon in listed:
        builder.button(
            text=claim_label(coupon, language), callback_data=CouponCB(action="claim", id=coupon.id)
        )
    builder.adjust(1)
    return builder.as_markup()


async def coupon_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """/coupon (list and help) · /coupon N <rules> · /coupon end C5."""
    now = clock.now()
    words = (command.args or "").split()
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    language = current_language()
    if not words:
        listed = await coupons.of_groups(session, [g.id for g in groups])
        scope = await coupons.scope_of(session, [c.id for c in listed])
        await message.answer(owner_text(groups, listed, language, scope))
        return
    if words[0].lower() == "end" and len(words) == 2:
        code = words[1].upper().removeprefix("C")
        try:
            coupon_id = parse_int(code, minimum=1)
        except ParseError:
            raise coupons.CouponNotFound(0) from None
        coupon = await coupons.end(session, admins, user.id, coupon_id, now)
        await message.answer(ended_text(coupon))
        return
    try:
        index = parse_int(words[0], minimum=1, maximum=999)
    except ParseError:
        index = 0
    if not 1 <= index <= len(groups):
        await message.answer(owner_text(groups, [], language))
        return
    group = groups[index - 1]
    spec = coupons.parse_spec(words[1:], group, now)
    coupon = await coupons.create(session, admins, user.id, group.id, spec, now)
    await message.answer(created_text(coupon, group, language, set(spec.deal_ids)))


async def coupons_in_group(message: Message, session: AsyncSession, clock: Clock) -> None:
    """/coupons in a group: its coupons to claim, with a Claim button each."""
    group = await group_service.get_by_chat(session, message.chat.id)
    if group is None:
        return
    listed = await coupons.claimable(session, [group.id], clock.now())
    scope = await coupons.scope_of(session, [c.id for c in listed])
    await message.answer(
        group_text(listed, group, current_language(), scope), reply_markup=_claim_keyboard(listed)
    )


async def coupons_private(
    message: Message, session: AsyncSession, user: User, clock: Clock
) -> None:
    """/coupons in private chat."""
    await message.answer(**await _member_view(message, session, user, clock))


async def _member_view(message: Message, session: AsyncSession, user: User, clock: Clock) -> dict:
    now = clock.now()
    language = current_language()
    groups = await coupons.member_groups(session, user.id)
    group_ids = [g.id for g in groups]
    listed = await coupons.claimable(session, group_ids, now)
    held = await coupons.claims_of(session, user.id)
    switches = await coupons.switchable(session, user.id, now)
    packs: dict[int, str] = {}
    me = await message.bot.me()
    for group in groups:
        if await coupons.pack_coupon(session, group.id, now) is not None:
            pack = await coupons.pack_of(session, group.id, user.id, now)
            packs[group.id] = share_link(me.username, coupons.link_payload(pack))
    builder = InlineKeyboardBuilder()
    for coupon in listed:
        builder.button(
            text=claim_label(coupon, language), callback_data=CouponCB(action="claim", id=coupon.id)
        )
    for item in switches:
        for claim, coupon, discount in item.options:
            builder.button(
                text=switch_label(item, coupon, discount, language),
                callback_data=CouponCB(action="use", id=claim.id, order=item.order.id),
            )
        if item.current is not None:
            builder.button(
                text=none_label(item),
                callback_data=CouponCB(action="use", id=0, order=item.order.id),
            )
    builder.adjust(1)
    markup = builder.as_markup() if listed or switches else None
    scope = await coupons.scope_of(session, [c.id for c in listed])
    text = member_text(groups, listed, held, switches, packs, language, now, scope)
    return {"text": text, "reply_markup": markup}


async def coupon_button(
    query: CallbackQuery, callback_data: CouponCB, session: AsyncSession, user: User, clock: Clock
) -> AnswerCallbackQuery:
    now = clock.now()
    chat = query.message.chat if query.message is not None else None
    if callback_data.action == "claim":
        group_id = None
        if chat is not None and chat.type != "private":
            group = await group_service.get_by_chat(session, chat.id)
            if group is None:
                raise coupons.CouponNotFound(callback_data.id)
            group_id = group.id
        made, coupon, owner = await coupons.claim(
            session, callback_data.id, user.id, now, group_id=group_id
        )
        text = claimed_text(made, coupon, owner.timezone, current_language())
        return query.answer(text[:200], show_alert=True)
    if callback_data.action == "use" and chat is not None and chat.type == "private":
        await coupons.switch(session, callback_data.order, user.id, callback_data.id, now)
        return query.answer(switched_text(), show_alert=True)
    raise coupons.CouponNotFound(callback_data.id)  # an action no button has: out of date


async def pack_link(
    message: Message, command: CommandObject, session: AsyncSession, user: User, clock: Clock
) -> None:
    """/start pack_<code>: a friend opens a coupon pack."""
    await people.mark_started(session, user.id)
    code = coupons.parse_link(command.args or "")
    try:
        if code is None:
            raise coupons.PackRefused("unknown")
        _opened, group, coupon = await coupons.open_pack(session, code, user.id, clock.now())
    except coupons.PackRefused as err:  # answered here: the start itself is kept
        await message.answer(coupon_error_text(err) or "")
        return
    await message.answer(pack_opened_text(group, coupon, current_language()))


def router() -> Router:
    r = Router(name="coupons")
    r.callback_query.register(coupon_button, CouponCB.filter())
    r.message.register(
        pack_link,
        F.chat.type == "private",
        CommandStart(deep_link=True, magic=F.args.startswith(coupons.LINK_PREFIX)),
    )
    r.message.register(coupon_command, F.chat.type == "private", Command("coupon"))
    r.message.register(coupons_private, F.chat.type == "private", Command("coupons"))
    r.message.register(
        coupons_in_group, F.chat.type.in_({"group", "supergroup"}), Command("coupons")
    )
    return r


__all__ = ["router", "usage_text"]
