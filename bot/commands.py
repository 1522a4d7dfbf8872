"""The command menu, per scope and language (setMyCommands)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
)
from aiogram.utils.i18n import I18n

from services.locales import SUPPORTED_LANGUAGES, TELEGRAM_CODES

log = logging.getLogger(__name__)


def N_(message: str) -> str:
    """Marks a string for extraction into the catalogs; translated later with a locale."""
    return message


PRIVATE = [
    ("start", N_("Welcome and your groups")),
    ("myorders", N_("Your orders")),
    ("mycredit", N_("Your referral credit")),
    ("reviews", N_("Your reviews; /reviews D17: a deal's reviews")),
    ("coupons", N_("Coupons: claim, use, share a coupon pack")),
    ("invite", N_("Your personal invite link to a group")),
    ("newdeal", N_("Create a group-buy deal")),
    ("deals", N_("Your deals")),
    ("schedule", N_("Scheduled posts in your groups")),
    ("orders", N_("Orders of a deal, exports, fulfilment")),
    ("pickup", N_("Mark an order picked up by its code")),
    ("digest", N_("Daily digest of your groups")),
    ("settings", N_("Timezone, currency and language of your groups")),
    ("commission", N_("Commission, credit spending and payouts")),
    ("teambuy", N_("Team buy on a deal: /teambuy D17 3 8.50 24")),
    ("bargain", N_("Bargain on a deal: /bargain D17 12.00 8.00 5 24")),
    ("bargains", N_("A deal's bargains and who helped")),
    ("coupon", N_("Create and end coupons of your groups")),
    ("poll", N_("Ask your groups: /poll 1,2 3d Question? | A | B")),
    ("polls", N_("Your polls and their votes")),
    ("lottery", N_("Lotteries in your groups, drawn verifiably")),
    ("event", N_("Create an offline event in one of your groups")),
    ("checkin", N_("Check a member in at an event by their code")),
    ("members", N_("Core and dormant members of your groups")),
    ("invites", N_("Who invited whom into your groups")),
    ("modlog", N_("What the spam rules did in your groups")),
    ("lang", N_("Choose your language")),
    ("mydata", N_("A copy of everything stored about you")),
    ("forgetme", N_("Delete your personal data")),
    ("help", N_("What I can do")),
]
GROUP = [
    ("deals", N_("Open deals in this group")),
    ("buy", N_("Order: /buy D17 2")),
    ("cancel", N_("Cancel your order: /cancel D17")),
    ("top", N_("Most active members and top inviters")),
    ("coupons", N_("Coupons of this group")),
    ("invite", N_("Your personal invite link")),
    ("help", N_("What I can do")),
]
GROUP_ADMINS = [
    *GROUP,
    ("settings", N_("Set up this group (in private chat)")),
    ("allow", N_("Exempt a member from the spam rules (reply)")),
    ("unallow", N_("Remove a member from the allow-list")),
]

SCOPES = (
    (BotCommandScopeAllPrivateChats(), PRIVATE),
    (BotCommandScopeAllGroupChats(), GROUP),
    (BotCommandScopeAllChatAdministrators(), GROUP_ADMINS),
)


def menu(i18n: I18n, commands: list[tuple[str, str]], language: str) -> list[BotCommand]:
    return [
        BotCommand(command=name, description=i18n.gettext(text, locale=language))
        for name, text in commands
    ]


async def set_commands(bot: Bot, i18n: I18n, default_language: str) -> None:
    """One menu per scope for every language, plus a fallback in the default language."""
    try:
        for scope, commands in SCOPES:
            await bot.set_my_commands(menu(i18n, commands, default_language), scope=scope)
            for language in SUPPORTED_LANGUAGES:
                await bot.set_my_commands(
                    menu(i18n, commands, language),
                    scope=scope,
                    language_code=TELEGRAM_CODES[language],
                )
    except TelegramAPIError as exc:
        log.warning("could not set the command menu: %s", exc)
