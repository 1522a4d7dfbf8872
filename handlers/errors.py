"""The errors router, first at the root: whatever a handler raised is answered here.

How an exception travels: a handler raises inside the update's transaction
(bot/middlewares/database.py), which rolls everything back, the update id included, and
re-raises; aiogram's ErrorsMiddleware (the outermost middleware of the Dispatcher) then
propagates an ErrorEvent through the routers, and this one takes every error.

- A domain error (services.errors.DomainError and its subclasses: refused orders, a group
  the user does not run, input that does not parse…) becomes the same localized sentence
  the handlers use for it.
- Anything else is logged with the update id and answered with a short apology.

Who is answered: a button always (an alert, so the client stops waiting); a message in
private; a command in a group (as a reply; other group messages get no answer). Failing to
answer (Telegram refuses, the query is too old) is logged; this handler never raises.

Failures that are not domain errors are answered and then declined (UNHANDLED), so the
exception still reaches the runner (bot/runner.py `deliver`), which records it: a permanent
one (a data error, a bug; bot/failures.py decides, once for both) as failed and processed,
acknowledged; a transient one (the database or the network) is tried again a bounded number
of times (the webhook answers 500) and then set aside. A domain error is handled here.
"""

from __future__ import annotations

import logging
import re
from html import unescape
from typing import Any

from aiogram import Bot, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent, ReplyParameters, Update
from aiogram.utils.i18n import gettext as _

from bot.failures import is_transient
from handlers.common import group_gone
from handlers.credit import cannot_spend_text
from handlers.owner_orders import bad_transition_text, not_confirmed_text, unknown_order
from services import calendar, credit, digest, fulfilment
from services.errors import (
    DomainError,
    GroupNotFound,
    InvalidCurrency,
    InvalidLanguage,
    InvalidTimezone,
    NotGroupAdmin,
)
from views.bargain_texts import bargain_error_text
from views.coupon_texts import coupon_error_text
from views.credit_texts import bad_days_text, bad_percent_text
from views.deal_texts import domain_error_text
from views.digest_texts import arg_error_text, time_error_text
from views.event_texts import event_error_text
from views.format import ALERT_LIMIT, cut, echo
from views.lottery_texts import lottery_error_text
from views.poll_texts import poll_error_text
from views.review_texts import review_error_text
from views.team_texts import team_error_text

log = logging.getLogger(__name__)

PRIVATE = "private"
_TAG = re.compile(r"<[^>]+>")


# ---------------------------------------------------------------- texts


def apology() -> str:
    return _("Something went wrong. Please try again.")


def stale_button() -> str:
    return _("This button is out of date.")


def error_text(err: DomainError) -> str:
    """The localized sentence for a domain error (HTML; the handlers' own texts)."""
    if isinstance(err, NotGroupAdmin):
        return _("You are not an owner or administrator of that group.")
    if isinstance(err, GroupNotFound):
        return group_gone()
    if isinstance(err, InvalidLanguage):
        return stale_button()
    if isinstance(err, InvalidTimezone):
        return _(
            "“{value}” is not a timezone I know. Send an IANA name such as "
            "<code>Asia/Shanghai</code>, <code>Europe/Berlin</code> "
            "or <code>America/New_York</code>."
        ).format(value=echo(err.value))
    if isinstance(err, InvalidCurrency):
        return _(
            "“{value}” is not an ISO 4217 currency code. Send three letters such as "
            "<code>CNY</code>, <code>USD</code>, <code>EUR</code> or <code>HKD</code>."
        ).format(value=echo(err.value))
    if isinstance(err, credit.BadPercent):
        return bad_percent_text(err)
    if isinstance(err, credit.BadDays):
        return bad_days_text(err)
    if isinstance(err, credit.CannotSpend):
        return cannot_spend_text(err)
    if isinstance(err, digest.DigestArgError):
        return arg_error_text(err)
    if isinstance(err, digest.InvalidDigestTime):
        return time_error_text(err.value)
    if isinstance(err, calendar.PostNotFound):
        return _("That post no longer exists.")
    if isinstance(err, fulfilment.OrderNotFound):
        return unknown_order()
    if isinstance(err, fulfilment.UnknownPickupCode):
        return _("No order has the pickup code {code}.").format(
            code=f"<code>{echo(err.code)}</code>"
        )
    if isinstance(err, fulfilment.NotConfirmed):
        return not_confirmed_text(err)
    if isinstance(err, fulfilment.BadTransition):
        return bad_transition_text(err)
    team = team_error_text(err)
    if team is not None:
        return team
    bargain = bargain_error_text(err)
    if bargain is not None:
        return bargain
    coupon = coupon_error_text(err)
    if coupon is not None:
        return coupon
    poll = poll_error_text(err)
    if poll is not None:
        return poll
    lottery = lottery_error_text(err)
    if lottery is not None:
        return lottery
    event = event_error_text(err)
    if event is not None:
        return event
    review = review_error_text(err)
    if review is not None:
        return review
    return domain_error_text(err)  # deals, orders, parse errors; else "not possible right now"


def plain(text: str) -> str:
    """An HTML text for an alert (answerCallbackQuery shows plain text, 200 at most)."""
    return cut(unescape(_TAG.sub("", text)), ALERT_LIMIT)


# ---------------------------------------------------------------- the handler


async def tell(bot: Bot, update: Update, text: str) -> bool:
    """Answer the user behind the update; False when there is no one to answer."""
    query = update.callback_query
    if query is not None:
        await bot.answer_callback_query(query.id, text=plain(text), show_alert=True)
        return True
    checkout = update.pre_checkout_query
    if checkout is not None:  # refused, so the payer is not left waiting Telegram's 10 s
        await bot.answer_pre_checkout_query(checkout.id, ok=False, error_message=plain(text))
        return True
    message = update.message
    if message is None or message.chat is None:
        return False
    if message.chat.type == PRIVATE:
        await bot.send_message(message.chat.id, text)
        return True
    if (message.text or "").startswith("/"):
        await bot.send_message(
            message.chat.id,
            text,
            reply_parameters=ReplyParameters(
                message_id=message.message_id, allow_sending_without_reply=True
            ),
        )
        return True
    return False


async def failed(event: ErrorEvent, bot: Bot, update_retried: bool = False) -> Any:
    """Every error of every router (see the module's docstring). A message whose earlier
    attempt failed transiently (`update_retried`, from the runner) got its apology then and
    gets no second one; a button is answered every time."""
    exc = event.exception
    update_id = event.update.update_id
    refused = isinstance(exc, DomainError)
    if refused:
        log.info("update %s refused: %s %s", update_id, type(exc).__name__, exc.args)
    else:  # the runner logs it with its traceback and records it
        kind = "transient" if is_transient(exc) else "permanent"
        log.warning("update %s failed (%s): %s", update_id, kind, type(exc).__name__)
        if update_retried and event.update.callback_query is None:
            return UNHANDLED
    try:
        await tell(bot, event.update, error_text(exc) if refused else apology())
    except TelegramAPIError as problem:
        log.warning("update %s: could not answer after the failure: %s", update_id, problem)
    except Exception:
        log.exception("update %s: answering after the failure failed", update_id)
    return None if refused else UNHANDLED


def router() -> Router:
    r = Router(name="errors")
    r.errors.register(failed)
    return r
