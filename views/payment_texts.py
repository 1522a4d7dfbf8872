"""The texts of payments (services.payments): invoices, notes to members and owners,
pre-checkout refusals, /terms and /paysupport; in the current locale."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from models import Deal, Order, Payment
from services.money import format_money
from views.format import cut, quote, wall_clock

TITLE_MAX = 32  # sendInvoice: title 1–32 characters
DESCRIPTION_MAX = 255  # description 1–255


def invoice_title(deal: Deal) -> str:
    return cut(f"{deal.title} ({deal.code})", TITLE_MAX) or deal.code


def invoice_description(deal: Deal, order: Order, owed: int, language: str, timezone: str) -> str:
    """Plain text (an invoice has no HTML): what is paid for, and by when."""
    text = _("{quantity} × {title}: {amount}. Pay by {deadline} ({timezone}).").format(
        quantity=order.quantity,
        title=deal.title,
        amount=format_money(owed, deal.currency, language),
        deadline=wall_clock(order.pay_by, timezone),
        timezone=timezone,
    )
    if order.discount:
        text += " " + _("Credit used: {credit}.").format(
            credit=format_money(order.discount, deal.currency, language)
        )
    if order.coupon_discount:
        text += " " + _("Coupon: −{amount}.").format(
            amount=format_money(order.coupon_discount, deal.currency, language)
        )
    return cut(text, DESCRIPTION_MAX)


def price_label(deal: Deal, order: Order) -> str:
    return cut(f"{order.quantity} × {deal.title}", 32)


def _values(deal: Deal, order: Order) -> dict[str, object]:
    return {"title": quote(deal.title), "code": deal.code, "quantity": order.quantity}


def remind_text(deal: Deal, order: Order, owed: int, language: str, timezone: str) -> str:
    return "⏰ " + _(
        "Your order “{title}” ({code}, ×{quantity}) is not paid yet: {amount} by {deadline}, "
        "or it is cancelled and the units go to the next members. Tap Pay on the invoice above."
    ).format(
        **_values(deal, order),
        amount=format_money(owed, deal.currency, language),
        deadline=quote(wall_clock(order.pay_by, timezone, with_zone=True)),
    )


def receipt_text(deal: Deal, order: Order, language: str) -> str:
    text = "✅ " + _("Payment received: “{title}” ({code}, ×{quantity}), {amount}.").format(
        **_values(deal, order),
        amount=format_money(order.paid_amount, deal.currency, language),
    )
    return (
        text
        + "\n"
        + _("Your pickup code: {pickup}").format(pickup=f"<code>{quote(order.pickup_code)}</code>")
    )


def lapsed_text(deal: Deal, order: Order) -> str:
    return "⌛ " + _(
        "Your order “{title}” ({code}, ×{quantity}) was cancelled: it was not paid by its "
        "deadline. Nothing was charged."
    ).format(**_values(deal, order))


def surplus_text(payment: Payment, language: str) -> str:
    amount = format_money(payment.amount, payment.currency, language)
    if payment.method == "stars":
        return "↩️ " + _(
            "Your payment of {amount} was not needed (the order was already paid, cancelled "
            "or changed): it is being refunded to you now."
        ).format(amount=amount)
    return "↩️ " + _(
        "Your payment of {amount} was not needed (the order was already paid, cancelled or "
        "changed). The group's owner has been asked to refund it to your card; keep this "
        "reference: {charge}"
    ).format(amount=amount, charge=f"<code>{quote(payment.charge_id)}</code>")


def refunded_text(payment: Payment, language: str) -> str:
    return "↩️ " + _("{amount} was refunded to you in Telegram Stars.").format(
        amount=format_money(payment.amount, payment.currency, language)
    )


def owner_owed_text(payment: Payment, deal: Deal, language: str) -> str:
    return "⚠️ " + _(
        "A card payment of {amount} for “{title}” ({code}) is owed back to a member: the order "
        "was already paid, cancelled or changed. Refund it in your payment provider's "
        "dashboard (provider reference {provider}, Telegram reference {charge}), then tap "
        "the button below."
    ).format(
        amount=format_money(payment.amount, payment.currency, language),
        title=quote(deal.title),
        code=deal.code,
        provider=f"<code>{quote(payment.provider_charge_id or '—')}</code>",
        charge=f"<code>{quote(payment.charge_id)}</code>",
    )


def owner_refund_failed_text(payment: Payment, deal: Deal, language: str) -> str:
    return "⚠️ " + _(
        "Telegram refused to refund {amount} in Stars for “{title}” ({code}): {reason}. "
        "Reference {charge}; contact the member, or Telegram's support if it persists."
    ).format(
        amount=format_money(payment.amount, payment.currency, language),
        title=quote(deal.title),
        code=deal.code,
        reason=quote(payment.refund_reason),
        charge=f"<code>{quote(payment.charge_id)}</code>",
    )


def refunded_outside_button() -> str:
    return _("I refunded it in the dashboard")


def confirmed_outside_text() -> str:
    return _("Recorded: the card payment was refunded in the provider's dashboard.")


def nothing_owed_text() -> str:
    return _("That payment is not owed any more.")


def precheck_refusal(reason: str) -> str:
    """Why an invoice cannot be paid (answerPreCheckoutQuery's error_message)."""
    texts = {
        "unknown": _(
            "This invoice is not one of mine any more. Send /myorders to see your orders."
        ),
        "not_yours": _("This invoice is for another member's order; it cannot be paid by you."),
        "paid": _("This order is already paid: nothing more to pay."),
        "cancelled": _("This order is cancelled or not due for payment: nothing to pay."),
        "expired": _("The time to pay this order has passed; it is being cancelled."),
        "stale": _(
            "This invoice was replaced by a newer one (the amount changed): pay the latest."
        ),
        "amount": _(
            "The amount of this invoice is not what the order owes now: pay the latest invoice."
        ),
        "currency": _("This invoice is in another currency than the deal: pay the latest invoice."),
    }
    return texts.get(reason, texts["unknown"])


def refund_card_confirm_text(payment: Payment, language: str) -> str:
    return _(
        "This order was paid by card ({amount}). Card payments are refunded in your payment "
        "provider's dashboard (provider reference {provider}). Refund it there, then confirm "
        "here to cancel the order."
    ).format(
        amount=format_money(payment.amount, payment.currency, language),
        provider=f"<code>{quote(payment.provider_charge_id or payment.charge_id)}</code>",
    )


def refund_confirm_button() -> str:
    return _("Refunded in the dashboard: cancel the order")


def terms_default() -> str:
    return _(
        "Terms: you pay the group's organiser for the items of a deal, at the price shown "
        "when you pay. A deal that does not reach its minimum or is cancelled is not charged, "
        "and anything paid for it is refunded. An order not paid by its deadline is "
        "cancelled. Payments the bot did not need are refunded. Questions: /paysupport."
    )


def paysupport_default() -> str:
    return _(
        "Payment support: write to the organiser of the group the deal was posted in; "
        "give them the reference in your receipt. Your orders and their payments: /myorders."
    )
