"""A deal's orders as rows, CSV and XLSX, for the owner's spreadsheet.

- Money is written as decimal text in major units ("12.50"), computed with integers and
  Decimal, never with floats. In XLSX the money cells are numbers (so SUM works) written from
  that Decimal, with a number format showing the currency's decimals.
- Names, usernames and group titles are typed by users: a cell starting with = + - @ (or a
  tab / carriage return) would be run as a formula by Excel or LibreOffice, so such text gets
  a leading apostrophe (OWASP's advice against CSV/formula injection), in both formats.
- CSV is UTF-8 with a byte order mark, so Excel opens Chinese names correctly.
- "joined at" is shown in the local time of the group the order was placed in.
- Payments (services.payment_books): how the deal is paid, what the order still owes
  (amount − discount, 0 once paid), what applied payments brought in, the Telegram and the
  provider's charge ids (space separated) and the state of its payments ("paid",
  "refund_pending", "refunded", "refund_failed", "owed", "refunded_outside", or empty).
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Bargain, Group, Order, Team, User
from services import deals as deal_service
from services import payment_books
from services import teams as team_service
from services.money import minor_digits
from services.timezones import to_local

COLUMNS: tuple[str, ...] = (
    "order_id",
    "pickup_code",
    "name",
    "username",
    "quantity",
    "unit_price",
    "amount",
    "currency",
    "status",
    "fulfilment",
    "joined_at",
    "group",
    "pay_method",
    "owed",
    "paid_amount",
    "charge_ids",
    "provider_charge_ids",
    "refund_state",
    "team",
    "bargain",
)
TITLES: dict[str, str] = {
    "order_id": "Order",
    "pickup_code": "Pickup code",
    "name": "Name",
    "username": "Username",
    "quantity": "Quantity",
    "unit_price": "Unit price",
    "amount": "Amount",
    "currency": "Currency",
    "status": "Status",
    "fulfilment": "Fulfilment",
    "joined_at": "Joined at",
    "group": "Group",
    "pay_method": "Pay method",
    "owed": "Amount owed",
    "paid_amount": "Paid amount",
    "charge_ids": "Charge ids",
    "provider_charge_ids": "Provider charge ids",
    "refund_state": "Refund state",
    "team": "Team",
    "bargain": "Bargain",
}
MONEY = frozenset({"unit_price", "amount", "owed", "paid_amount"})
DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
TIME_FORMAT = "%Y-%m-%d %H:%M"


def decimal_text(amount_minor: int | None, currency: str) -> str:
    """1250, 'CNY' → '12.50'; 500, 'JPY' → '500'; None → ''."""
    if amount_minor is None:
        return ""
    digits = minor_digits(currency)
    return str(Decimal(amount_minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


def neutralise(value: str) -> str:
    """Text a spreadsheet would read as a formula gets a leading apostrophe."""
    return "'" + value if value.startswith(DANGEROUS_START) else value


async def rows(session: AsyncSession, deal_id: int) -> list[dict[str, Any]]:
    """Every order of the deal with units in it (cancelled-to-zero orders are left out), in
    the order people joined. Amounts: the charged amount once the deal succeeded; while it is
    open, quantity × the tier price reached so far (the status column says "active")."""
    deal = await deal_service.get(session, deal_id)
    result = await session.execute(
        select(Order, User, Group)
        .outerjoin(User, User.id == Order.user_id)
        .outerjoin(Group, Group.id == Order.group_id)
        .where(Order.deal_id == deal_id, Order.quantity > 0)
        .order_by(Order.id)
    )
    fallback_tz = None
    current_price = deal_service.price_at(deal, deal.total_qty)
    found = result.all()
    payments = await payment_books.of_orders(session, [order.id for order, _u, _g in found])
    teams = {team.id: team for team in await team_service.of_deal(session, deal_id)}
    bargains = await bargain_codes(session, [o.bargain_id for o, _u, _g in found if o.bargain_id])
    out: list[dict[str, Any]] = []
    for order, user, group in found:
        if group is None and fallback_tz is None:
            posted = await deal_service.posts(session, deal_id)
            fallback_tz = posted[0][1].timezone if posted else "UTC"
        timezone = group.timezone if group is not None else fallback_tz
        if order.status == "confirmed":
            unit, amount = order.unit_price, order.amount
        elif order.status == "active":  # a team's place at the team's price
            team = teams.get(order.team_id or 0)
            unit = team.price if team is not None else current_price
            amount = unit * order.quantity
        else:  # failed or cancelled with the deal: nothing is charged
            unit, amount = None, None
        if amount is None:
            owed = None
        elif order.paid_at is not None:
            owed = 0
        else:
            owed = max(amount - (order.discount or 0) - (order.coupon_discount or 0), 0)
        paid = payments.get(order.id, [])
        out.append(
            {
                "order_id": order.id,
                "pickup_code": order.pickup_code,
                "name": user.full_name if user is not None else str(order.user_id),
                # without "@": a cell starting with @ is a formula to Excel
                "username": (user.username or "") if user is not None else "",
                "quantity": order.quantity,
                "unit_price": decimal_text(unit, deal.currency),
                "amount": decimal_text(amount, deal.currency),
                "currency": deal.currency,
                "status": order.status,
                "fulfilment": order.fulfilment,
                "joined_at": to_local(order.created_at, timezone).strftime(TIME_FORMAT),
                "group": group.title if group is not None else "",
                "pay_method": deal.pay_method,
                "owed": decimal_text(owed, deal.currency),
                "paid_amount": decimal_text(order.paid_amount or 0, deal.currency),
                "charge_ids": " ".join(p.charge_id for p in paid),
                "provider_charge_ids": " ".join(
                    p.provider_charge_id for p in paid if p.provider_charge_id
                ),
                "refund_state": payment_books.refund_state(paid),
                "team": _team_cell(teams.get(order.team_id or 0)),
                "bargain": bargains.get(order.bargain_id or 0, ""),
            }
        )
    return out


async def bargain_codes(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    """A bargain's order: its bargain's code (the owner's `/bargains` lists its helpers)."""
    if not ids:
        return {}
    rows = await session.execute(select(Bargain.id, Bargain.code).where(Bargain.id.in_(ids)))
    return dict(rows.all())


def _team_cell(team: Team | None) -> str:
    """A team member's order: the team's code and how it stands (open, filled, failed)."""
    return f"{team.code} ({team.status})" if team is not None else ""


def _header(titles: dict[str, str] | None) -> list[str]:
    names = {**TITLES, **(titles or {})}
    return [neutralise(names[c]) for c in COLUMNS]


def _cell(value: Any) -> Any:
    return neutralise(value) if isinstance(value, str) else value


def to_csv(rows: list[dict[str, Any]], titles: dict[str, str] | None = None) -> bytes:
    """UTF-8 with BOM, comma separated, CRLF line ends (what Excel expects)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(_header(titles))
    for row in rows:
        writer.writerow([_cell(row[c]) for c in COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(
    rows: list[dict[str, Any]], titles: dict[str, str] | None = None, sheet: str = "Orders"
) -> bytes:
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    ws = workbook.active
    ws.title = sheet[:31]
    ws.append(_header(titles))
    for cell in ws[1]:
        cell.data_type = "s"
    widths = [len(t) for t in _header(titles)]
    for number, row in enumerate(rows, start=2):
        digits = minor_digits(row["currency"]) if row.get("currency") else 2
        money_format = "0." + "0" * digits if digits else "0"
        for index, column in enumerate(COLUMNS, start=1):
            value = row[column]
            cell = ws.cell(row=number, column=index)
            if column in MONEY and value != "":
                cell.value = Decimal(value)
                cell.number_format = money_format
            elif isinstance(value, str):
                cell.value = neutralise(value)
                cell.data_type = "s"  # never a formula, whatever the text
            else:
                cell.value = value
            widths[index - 1] = max(widths[index - 1], len(str(value)))
    for index, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 8), 40)
    ws.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
