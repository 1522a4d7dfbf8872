"""Shared pieces of the handlers: keyboards and texts used in several places."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.callbacks import LangCB
from models import Group, User
from services.admins import AdminDirectory
from services.errors import GroupNotFound, NotGroupAdmin
from services.locales import LANGUAGE_NAMES, SUPPORTED_LANGUAGES
from views.format import quote as quote  # re-exported: handlers import it from here


def language_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=LANGUAGE_NAMES[code], callback_data=LangCB(code=code).pack()
                )
                for code in SUPPORTED_LANGUAGES
            ]
        ]
    )


def help_text(*, private: bool, is_owner: bool, is_admin: bool) -> str:
    """Help fitted to where it is read and who reads it."""
    lines = [_("<b>Tuan (团)</b> runs group-buys and sign-up lists right in your group chat.")]
    if private:
        lines += [
            "",
            _("<b>For everyone</b>"),
            _("/start: welcome and your groups"),
            _("/myorders: your orders, their status and pickup codes"),
            _("/mycredit: your referral credit, its history, using it on an order"),
            _("/reviews: rate what you picked up or got delivered, and your reviews"),
            _("/invite: your personal invite link to a group"),
            _("/lang: choose your language"),
            _("/mydata: a copy of everything stored about you"),
            _("/forgetme: delete your personal data"),
            _("/hideme, /showme: leave or rejoin the groups' leaderboards"),
            _("/help: this help"),
        ]
        if is_owner:
            lines += [
                "",
                _("<b>For group owners and admins</b>"),
                _("/newdeal: create a group-buy deal"),
                _("/deals: your deals: edit, pause, close, cancel, duplicate"),
                _("/orders D17: orders of a deal, exports, fulfilment"),
                _("/pickup CODE: mark an order picked up"),
                _("/reviews D17: the reviews of a deal, and your reply to each"),
                _("/schedule: posts to your groups at set times (/schedule list)"),
                _("/settings: timezone, currency and language of your groups"),
                _("/commission: commission, credit spending and payouts in your groups"),
                _("/members: core and dormant members of your groups"),
                _("/digest: yesterday's digest of your groups (/digest 7d, /digest settings)"),
                _("/invites: who invited whom into your groups"),
                _("/teambuy D17: team buys of a deal; /bargain D17: bargains with friends"),
                _("/coupon: coupons and coupon packs for your groups"),
                _("/poll: ask your groups a question (/polls: the results)"),
                _("/lottery: a lottery in a group, drawn verifiably"),
                _("/event: an offline event; /checkin CODE: check a member in"),
                _("/modlog: what spam protection did in your groups, with Undo"),
            ]
        else:
            lines += [
                "",
                _(
                    "Run a community? Add me to your group and make me an admin; "
                    "then you can manage it here with /settings."
                ),
            ]
        if is_admin:
            lines += [
                "",
                _("<b>Bot operators</b>"),
                _("/status: delivery queue, failures and what is due next"),
            ]
    else:
        lines += [
            "",
            _("/deals: the open deals of this group"),
            _("/buy D17 2: order 2 units of deal D17 (or tap Join on the post)"),
            _("/cancel D17: cancel your order"),
            _("/top: most active members and top inviters (/top 30 for 30 days)"),
            _("/hideme: keep your name off /top (/showme to undo)"),
            _("/invite: your personal invite link to this group"),
            _("/help: this help"),
        ]
        if is_owner:
            lines += [
                "",
                _("You administer this group: open a private chat with me and use /settings."),
                _("/allow (as a reply): exempt a member from spam protection"),
            ]
        else:
            lines += ["", _("Open a private chat with me for your language and your groups.")]
    return "\n".join(lines)


def group_gone() -> str:
    return _("That group is unknown or I am no longer in it.")


async def group_of_form(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    refusal: Callable[[], str],
) -> Group | None:
    """The group a private form is about (FSM data `group_id`), checked again: the user must
    still administer it. Otherwise the form ends with `refusal()` or "group gone"."""
    data = await state.get_data()
    try:
        return await admins.require_admin(session, int(data.get("group_id", 0)), user.id)
    except (NotGroupAdmin, GroupNotFound) as exc:
        await state.clear()
        await message.answer(refusal() if isinstance(exc, NotGroupAdmin) else group_gone())
        return None


async def show(query: CallbackQuery, text: str, keyboard: InlineKeyboardMarkup | None) -> None:
    """Replace the message the button was on; send a new one if it cannot be edited (too
    old, a photo); a double tap ("message is not modified") changes nothing."""
    message = query.message
    if isinstance(message, Message) and message.text is not None:
        try:
            await message.edit_text(text, reply_markup=keyboard)
            return
        except TelegramBadRequest as exc:
            if "not modified" in str(exc):
                return
    await query.bot.send_message(query.from_user.id, text, reply_markup=keyboard)


def group_title(group: Group, limit: int = 60) -> str:
    """A group's name for a button (plain text, cut to fit)."""
    title = (group.title or str(group.chat_id)).strip()
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def group_picker(
    groups: Iterable[Group],
    callback: Callable[[Group], str],
    label: Callable[[Group], str] = group_title,
) -> InlineKeyboardMarkup:
    """One button per group, in a column: the private "which group?" question of /settings,
    /commission, /members and /invite."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label(group), callback_data=callback(group))]
            for group in groups
        ]
    )
