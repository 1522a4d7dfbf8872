"""Texts of the owner's /deals: a deal's progress, its summary line and its reminders."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from models import Deal
from services import deals as deal_service
from views.deal_texts import (
    local_times,
    participants,
    reminders_text,
    status_name,
    units,
)
from views.format import quote


def progress_text(deal: Deal) -> str:
    parts = [units(deal.total_qty), participants(deal.participants)]
    if deal.min_kind and deal.min_value:
        missing = deal_service.missing_for_minimum(deal)
        needed = units(deal.min_value) if deal.min_kind == "units" else participants(deal.min_value)
        if missing:
            parts.append(
                _("minimum {needed}, {missing} more").format(needed=needed, missing=missing)
            )
        else:
            parts.append(_("minimum {needed} reached").format(needed=needed))
    if deal.stock_total is not None:
        parts.append(
            _("stock {left} of {total} left").format(left=deal.stock_left, total=deal.stock_total)
        )
    return " · ".join(parts)


def closing_line(deal: Deal, timezones: list[str]) -> str:
    """When the deal closes ("Closes:"), or, once it is over, when it closed or was
    cancelled (its closing moment, which may be before the planned time)."""
    if deal.status not in deal_service.FINAL_STATES:
        return _("Closes: {time}").format(time=local_times(deal.closes_at, timezones))
    when = local_times(deal.closed_at or deal.closes_at, timezones)
    if deal.status == "cancelled":
        return _("Cancelled: {time}").format(time=when)
    return _("Closed: {time}").format(time=when)


def summary(deal: Deal, timezones: list[str]) -> str:
    return "\n".join(
        [
            f"<b>{deal.code}</b> · {quote(deal.title)} — {status_name(deal.status)}",
            progress_text(deal),
            closing_line(deal, timezones),
        ]
    )


def reminders_note(deal: Deal) -> str:
    return _("Reminders of {code}: {value}.").format(
        code=deal.code, value=reminders_text(deal.reminders)
    )
