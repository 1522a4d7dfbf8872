"""Payments in private chat (services.payments): pre-checkout answers, successful payments,
the owner's word that an owed card payment was refunded, /terms and /paysupport.

The pre-checkout handler names no session and no user, so no write transaction is opened
for it (bot/middlewares/database.py): it reads one order in a read-only session and answers
within Telegram's 10 seconds whatever the write load. The successful payment is a message:
its update is recorded like any other, and the charge id is the key of its record.
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message, PreCheckoutQuery
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers.callbacks import PayCB
from models import Database, User
from services import payments
from services.admins import AdminDirectory
from services.deals import DealNotFound, NotDealOwner
from services.timezones import Clock
from views import payment_texts as texts
from views.format import quote
from views.owner_orders import not_yours

log = logging.getLogger(__name__)


async def pre_checkout(query: PreCheckoutQuery, db: Database, clock: Clock) -> None:
    async with db.read() as session:
        reason = await payments.precheck(
            session,
            payload=query.invoice_payload,
            user_id=query.from_user.id,
            currency=query.currency,
            amount=query.total_amount,
            now=clock.now(),
        )
    if reason is None:
        await query.answer(ok=True)
        return
    log.info("pre-checkout %s of %s refused: %s", query.id, query.from_user.id, reason)
    await query.answer(ok=False, error_message=texts.precheck_refusal(reason))


async def successful_payment(
    message: Message, session: AsyncSession, user: User, clock: Clock
) -> None:
    paid = message.successful_payment
    recorded = await payments.record(
        session,
        charge_id=paid.telegram_payment_charge_id,
        provider_charge_id=paid.provider_payment_charge_id or "",
        payload=paid.invoice_payload,
        user_id=user.id,
        currency=paid.currency,
        amount=paid.total_amount,
        now=clock.now(),
    )
    log.info(
        "successful payment %s of %s: %s",
        paid.telegram_payment_charge_id,
        user.id,
        recorded.outcome,
    )
    # the receipt (or the refund) is an outbox row written with the record


async def refunded_outside(
    query: CallbackQuery,
    callback_data: PayCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    try:
        payment = await payments.confirm_outside(
            session, callback_data.payment_id, user.id, clock.now(), admins=admins
        )
    except (DealNotFound, NotDealOwner):
        await query.answer(not_yours(), show_alert=True)
        return
    if payment is None:
        await query.answer(texts.nothing_owed_text(), show_alert=True)
        return
    log.info("payment %s refunded outside Telegram, says %s", payment.id, user.id)
    await query.answer(texts.confirmed_outside_text())
    if query.message is not None:
        await query.message.edit_reply_markup(reply_markup=None)


async def terms_command(
    message: Message, session: AsyncSession, user: User, settings: Settings
) -> None:
    own = await payments.group_text(session, user.id, "terms")
    await message.answer(quote(own or settings.terms_text) or texts.terms_default())


async def paysupport_command(
    message: Message, session: AsyncSession, user: User, settings: Settings
) -> None:
    own = await payments.group_text(session, user.id, "paysupport")
    await message.answer(quote(own or settings.paysupport_text) or texts.paysupport_default())


def router() -> Router:
    r = Router(name="payments")
    r.pre_checkout_query.register(pre_checkout)
    r.message.register(successful_payment, F.successful_payment, F.chat.type == "private")
    r.message.register(terms_command, Command("terms"), F.chat.type == "private")
    r.message.register(paysupport_command, Command("paysupport"), F.chat.type == "private")
    r.callback_query.register(refunded_outside, PayCB.filter(F.action == "out"))
    return r
