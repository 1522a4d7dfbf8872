"""Rendering the outbox rows of payments (services.payments promises them): the invoice,
the member's notes, the owner's notes, and the Stars refund — an API call whose outcome is
recorded when it is settled (`AFTER`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.methods import RefundStarPayment, SendInvoice, SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.callbacks import PayCB
from models import Payment
from services import notice_reads, payments
from services.money import STARS
from services.outbox import Claimed
from views import payment_texts as texts

if TYPE_CHECKING:
    from bot.notices import Context


async def _group_timezone(ctx: Context, default: str) -> str:
    group = await notice_reads.group(ctx.session, ctx.row.group_id) if ctx.row.group_id else None
    return group.timezone if group is not None else default


async def invoice(ctx: Context, payload: dict[str, Any]) -> SendInvoice | None:
    """The invoice for what the order owes now; nothing when it was paid, cancelled or
    replaced by a newer invoice meanwhile."""
    found = await notice_reads.order_with_deal(ctx.session, payload["order_id"])
    if found is None:
        return None
    order, deal = found
    owed = payments.owed(order)
    if (
        order.invoice_no != payload["invoice_no"]
        or owed <= 0
        or order.status not in ("active", "confirmed")
        or order.pay_by is None
    ):
        return None
    stars = deal.currency == STARS
    if not stars and not ctx.provider_token:
        raise RuntimeError("a card invoice needs PAYMENT_PROVIDER_TOKEN")
    timezone = await _group_timezone(ctx, ctx.timezone)
    return SendInvoice(
        chat_id=ctx.row.chat_id,
        title=texts.invoice_title(deal),
        description=texts.invoice_description(deal, order, owed, ctx.language, timezone),
        payload=payments.payload_of(order),
        currency=deal.currency,
        prices=[LabeledPrice(label=texts.price_label(deal, order), amount=owed)],
        provider_token="" if stars else ctx.provider_token,
    )


async def pay_note(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    what = payload["what"]
    if what in ("surplus", "refunded"):
        payment = await ctx.session.get(Payment, payload["payment_id"])
        if payment is None:
            return None
        text = (
            texts.surplus_text(payment, ctx.language)
            if what == "surplus"
            else texts.refunded_text(payment, ctx.language)
        )
        return SendMessage(chat_id=ctx.row.chat_id, text=text)
    found = await notice_reads.order_with_deal(ctx.session, payload["order_id"])
    if found is None:
        return None
    order, deal = found
    if what == "receipt":
        if order.paid_at is None:
            return None
        return SendMessage(
            chat_id=ctx.row.chat_id, text=texts.receipt_text(deal, order, ctx.language)
        )
    if what == "lapsed":
        return SendMessage(chat_id=ctx.row.chat_id, text=texts.lapsed_text(deal, order))
    # a reminder: only while that invoice is the one to pay
    owed = payments.owed(order)
    if (
        what != "remind"
        or order.invoice_no != payload.get("invoice_no")
        or owed <= 0
        or order.pay_by is None
        or order.status not in ("active", "confirmed")
    ):
        return None
    timezone = await _group_timezone(ctx, ctx.timezone)
    return SendMessage(
        chat_id=ctx.row.chat_id,
        text=texts.remind_text(deal, order, owed, ctx.language, timezone),
    )


async def pay_owner(ctx: Context, payload: dict[str, Any]) -> SendMessage | None:
    found = await payments.deal_of_payment(ctx.session, payload["payment_id"])
    if found is None:
        return None
    payment, deal = found
    if payload["what"] == "failed":
        return SendMessage(
            chat_id=ctx.row.chat_id,
            text=texts.owner_refund_failed_text(payment, deal, ctx.language),
        )
    if payment.refund != "owed":
        return None  # given back meanwhile
    button = InlineKeyboardButton(
        text=texts.refunded_outside_button(),
        callback_data=PayCB(action="out", payment_id=payment.id).pack(),
    )
    return SendMessage(
        chat_id=ctx.row.chat_id,
        text=texts.owner_owed_text(payment, deal, ctx.language),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )


async def star_refund(ctx: Context, payload: dict[str, Any]) -> RefundStarPayment | None:
    payment = await ctx.session.get(Payment, payload["payment_id"])
    if payment is None or payment.refund != "pending":
        return None
    return RefundStarPayment(user_id=payment.user_id, telegram_payment_charge_id=payment.charge_id)


async def star_refund_settled(
    session: AsyncSession, row: Claimed, failure: str | None, transient: bool, now
) -> None:
    """After a refundStarPayment: done, or failed for good (a transient failure is tried
    again by the outbox and decides nothing yet)."""
    if failure is not None and transient:
        return
    await payments.refund_settled(session, row.payload["payment_id"], failure, now)


RENDERERS = {
    "invoice": invoice,
    "pay_note": pay_note,
    "pay_owner": pay_owner,
    "star_refund": star_refund,
}

AFTER = {"star_refund": star_refund_settled}
