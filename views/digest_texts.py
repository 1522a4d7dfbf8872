"""Texts and the chart of the daily digest, in the current locale: used by `/digest` and by the
scheduled digests (scheduler/digests.py), which set each recipient's locale first."""

from __future__ import annotations

import asyncio

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent

from services.charts import render_chart
from services.digest import AdminDigest, DigestArgError, Figure, GroupDigest, Period
from services.locales import BABEL_LOCALES
from services.money import format_money, minor_digits
from views.common import current_language
from views.format import echo, quote

MAX_TEXT = 4096
DEALS_SHOWN = 10


def _babel() -> str:
    return BABEL_LOCALES.get(current_language(), "en")


def number(value: float) -> str:
    if float(value).is_integer():
        return format_decimal(int(value), locale=_babel())
    return format_decimal(round(value, 1), format="#,##0.0", locale=_babel())


def percent(value: float) -> str:
    return format_percent(value, format="#,##0.0%", locale=_babel())


def period_text(period: Period, timezone: str) -> str:
    locale = _babel()
    if period.days == 1:
        when = format_date(period.start, format="full", locale=locale)
    else:
        when = "{} – {}".format(
            format_date(period.start, format="medium", locale=locale),
            format_date(period.end, format="medium", locale=locale),
        )
    return f"{when} ({timezone})"


def _change(figure: Figure, show=number) -> str:
    """' (▲ 25.0% vs 7-day average 4)' — nothing when there is nothing to compare with."""
    if figure.baseline is None:
        return ""
    change = figure.change
    if change is None:
        if figure.value == 0:
            return ""
        arrow = "▲"
        return " " + _("({arrow} new; 7-day average {average})").format(
            arrow=arrow, average=show(figure.baseline)
        )
    arrow = "▲" if change > 0 else ("▼" if change < 0 else "=")
    return " " + _("({arrow} {change} vs 7-day average {average})").format(
        arrow=arrow, change=percent(abs(change)), average=show(figure.baseline)
    )


def _line(label: str, figure: Figure, show=number) -> str:
    return f"{label}: <b>{show(figure.value)}</b>{_change(figure, show)}"


def _time_left(seconds: float) -> str:
    minutes = max(int(seconds // 60), 1)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return _("{days} d {hours} h left").format(days=days, hours=hours)
    if hours:
        return _("{hours} h {minutes} min left").format(hours=hours, minutes=mins)
    return ngettext("{n} minute left", "{n} minutes left", mins).format(n=mins)


def _outcome(status: str) -> str:
    return {
        "succeeded": "✅ " + _("succeeded"),
        "failed": "❌ " + _("failed (minimum not reached)"),
        "cancelled": "🚫 " + _("cancelled"),
    }.get(status, status)


def group_text(d: GroupDigest) -> str:
    """The whole digest of one group, in the current locale (≤ 4096 characters)."""
    lang = current_language()
    lines = [
        "📊 " + _("<b>Digest of {title}</b>").format(title=quote(d.title)),
        period_text(d.period, d.timezone),
        "",
        "👥 <b>" + _("Members") + "</b>",
        _line(_("New members"), d.new_members),
    ]
    for p in d.joined:
        if p.inviter_id is not None:
            lines.append(
                "  • "
                + _("{name}, invited by {inviter}").format(
                    name=quote(p.name), inviter=quote(p.inviter_name)
                )
            )
        else:
            lines.append(f"  • {quote(p.name)}")
    lines.append(_line(_("Left"), d.left))
    lines += [f"  • {quote(p.name)}" for p in d.leavers]
    lines.append(_line(_("Active members"), d.active))
    lines.append(_line(_("Messages"), d.messages))
    if d.top:
        lines += ["", "🏆 <b>" + _("Top members") + "</b>"]
        for i, t in enumerate(d.top, 1):
            lines.append(
                f"{i}. {quote(t.name)}: "
                + ngettext("{n} message", "{n} messages", t.messages).format(n=number(t.messages))
                + ", "
                + ngettext("{n} order", "{n} orders", t.orders).format(n=number(t.orders))
            )
    lines += ["", "🛒 <b>" + _("Deals") + "</b>"]
    if d.open_deals:
        lines.append(_("Open now:"))
        for deal in d.open_deals[:DEALS_SHOWN]:
            if deal.min_kind and deal.min_value:
                have = deal.total_qty if deal.min_kind == "units" else deal.participants
                progress = _("{have}/{need} toward the minimum").format(
                    have=have, need=deal.min_value
                )
            else:
                progress = ngettext("{n} unit", "{n} units", deal.total_qty).format(
                    n=deal.total_qty
                )
            left = _time_left((deal.closes_at - d.now).total_seconds())
            lines.append(f"  • {quote(deal.title)} (D{deal.id}): {progress} · {left}")
        if len(d.open_deals) > DEALS_SHOWN:
            lines.append("  " + _("…and {n} more").format(n=len(d.open_deals) - DEALS_SHOWN))
    else:
        lines.append(_("No open deals."))
    if d.closed_deals:
        lines.append(_("Closed:"))
        for deal in d.closed_deals[:DEALS_SHOWN]:
            sums = ngettext("{n} order", "{n} orders", deal.orders).format(n=deal.orders)
            if deal.status == "succeeded":
                sums += ", " + format_money(deal.revenue, deal.currency, lang)
            lines.append(f"  • {quote(deal.title)} (D{deal.id}): {_outcome(deal.status)} · {sums}")
        if len(d.closed_deals) > DEALS_SHOWN:
            lines.append("  " + _("…and {n} more").format(n=len(d.closed_deals) - DEALS_SHOWN))
    lines += ["", "💰 <b>" + _("Sales") + "</b>"]
    lines.append(_line(_("Orders"), d.orders))
    lines.append(_line(_("Units"), d.units))
    if d.revenue:
        for currency, figure in d.revenue.items():
            lines.append(
                _line(
                    _("Revenue ({currency})").format(currency=currency),
                    figure,
                    lambda v, c=currency: format_money(round(v), c, lang),
                )
            )
    else:
        lines.append(_("Revenue: {amount}").format(amount=format_money(0, d.currency, lang)))
    lines += _payment_lines(d.collected, d.outstanding, lang)
    lines.append(_line(_("Cancellations"), d.cancellations))
    for currency, figure in d.credit.items():
        lines.append(
            _line(
                _("Referral credit earned ({currency})").format(currency=currency),
                figure,
                lambda v, c=currency: format_money(round(v), c, lang),
            )
        )
    if d.events.any:
        lines.append(
            "🎟 "
            + _("Event sign-ups: {signups} · Event attendance: {attended}").format(
                signups=number(d.events.signups), attended=number(d.events.attended)
            )
        )
    if d.coupons_claimed.value or d.coupons_claimed.baseline or d.coupons_redeemed.value:
        lines.append(_line(_("Coupons claimed"), d.coupons_claimed))
        lines.append(_line(_("Coupons used"), d.coupons_redeemed))
    lines.append(
        _line(
            _("Conversion ({buyers} buyers / {active} active)").format(
                buyers=d.buyers, active=number(d.active.value)
            ),
            d.conversion,
            percent,
        )
    )
    if d.teams.any:
        lines.append(
            "👥 "
            + _("Team buys: {filled} filled, {failed} failed, {open} open now").format(
                filled=number(d.teams.filled),
                failed=number(d.teams.failed),
                open=number(d.teams.open),
            )
        )
    if d.bargains.any:
        lines.append(
            "✂️ "
            + _("Bargains: {bought} bought, {expired} expired, {open} open now").format(
                bought=number(d.bargains.bought),
                expired=number(d.bargains.expired),
                open=number(d.bargains.open),
            )
        )
    if d.polls.any:
        lines.append(
            "📊 "
            + _("Polls: {closed} closed, {open} open now, {voters} voters").format(
                closed=number(d.polls.closed),
                open=number(d.polls.open),
                voters=number(d.polls.voters),
            )
        )
    if d.lotteries.any:
        lines.append(
            "🎁 "
            + _(
                "Lotteries: {entries} entries, {drawn} drawn, {claimed} prizes claimed, "
                "{open} open now"
            ).format(
                entries=number(d.lotteries.entries),
                drawn=number(d.lotteries.drawn),
                claimed=number(d.lotteries.claimed),
                open=number(d.lotteries.open),
            )
        )
    if d.reviews.count:
        lines.append(
            "★ "
            + ngettext(
                "Reviews: {n} new, average {average}",
                "Reviews: {n} new, average {average}",
                d.reviews.count,
            ).format(n=number(d.reviews.count), average=f"{d.reviews.average:.1f}")
        )
    if d.moderation.any:
        lines.append(
            "🛡 "
            + _(
                "Spam protection: {deleted} messages deleted, {muted} mutes, challenges "
                "{passed} passed and {failed} failed"
            ).format(
                deleted=number(d.moderation.deleted),
                muted=number(d.moderation.muted),
                passed=number(d.moderation.passed),
                failed=number(d.moderation.failed),
            )
        )
    if d.cards.any:
        lines += ["", "📇 <b>" + _("Shared deal cards") + "</b>"]
        lines.append(_line(_("Cards shared into chats"), d.cards.shared))
        lines.append(_line(_("Joins from cards"), d.cards.joins))
        lines.append(_line(_("Orders attributed to the members who shared"), d.cards.attributed))
        for currency, figure in d.cards.sales.items():
            lines.append(
                _line(
                    _("Sales through shared cards ({currency})").format(currency=currency),
                    figure,
                    lambda v, c=currency: format_money(round(v), c, lang),
                )
            )
    return _fit("\n".join(lines))


def _payment_lines(collected: dict[str, int], outstanding: dict[str, int], lang: str) -> list[str]:
    """Payments in the app, per currency: only the figures that are not zero."""
    lines = [
        _("Collected ({currency}): <b>{amount}</b>").format(
            currency=currency, amount=format_money(amount, currency, lang)
        )
        for currency, amount in sorted(collected.items())
        if amount
    ]
    lines += [
        _("Outstanding ({currency}): <b>{amount}</b>").format(
            currency=currency, amount=format_money(amount, currency, lang)
        )
        for currency, amount in sorted(outstanding.items())
        if amount
    ]
    return lines


def _fit(text: str) -> str:
    """Within Telegram's 4096: whole lines are dropped from the end (a cut inside a tag or an
    entity would make Telegram refuse the whole message)."""
    if len(text) <= MAX_TEXT:
        return text
    kept: list[str] = []
    size = 2  # the closing "\n…"
    for line in text.split("\n"):
        if size + len(line) + 1 > MAX_TEXT:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept) + "\n…"


def chart_title(d: GroupDigest) -> str:
    return d.title or _("Your group")


async def group_chart(d: GroupDigest) -> bytes:
    """The PNG of the last 30 days, labelled in the current locale (rendered in a thread)."""
    scale = 10 ** minor_digits(d.chart_currency or d.currency)
    panels = [
        (_("Active members"), d.chart_active),
        (_("Messages"), d.chart_messages),
        (_("Orders"), d.chart_orders),
        (
            _("Revenue ({currency})").format(currency=d.chart_currency or d.currency),
            [v / scale for v in d.chart_revenue],
        ),
    ]
    subtitle = _("Last {n} days up to {day} ({timezone})").format(
        n=len(d.chart_days),
        day=format_date(d.period.end, format="medium", locale=_babel()),
        timezone=d.timezone,
    )
    return await asyncio.to_thread(
        render_chart, chart_title(d), d.chart_days, panels, subtitle=subtitle
    )


def admin_text(a: AdminDigest) -> str:
    lang = current_language()
    lines = [
        "🛰 " + _("<b>All groups</b> ({n} active)").format(n=a.groups),
        _("Each group's own yesterday (its timezone)."),
        "",
        "💰 <b>" + _("Top groups by revenue") + "</b>",
    ]
    for i, s in enumerate(a.by_revenue, 1):
        money = ", ".join(format_money(v, c, lang) for c, v in sorted(s.revenue.items()) if v)
        orders = ngettext("{n} order", "{n} orders", s.orders).format(n=s.orders)
        lines.append(f"{i}. {quote(s.title)}: {money} · {orders}")
    if not a.by_revenue:
        lines.append(_("No sales."))
    lines += _payment_lines(a.collected, a.outstanding, lang)
    lines += ["", "🔥 <b>" + _("Top groups by activity") + "</b>"]
    for i, s in enumerate(a.by_activity, 1):
        lines.append(
            f"{i}. {quote(s.title)}: "
            + _("{active} active, {messages} messages").format(
                active=number(s.active), messages=number(s.messages)
            )
        )
    if not a.by_activity:
        lines.append(_("No activity."))
    lines += ["", "💤 <b>" + _("Gone inactive") + "</b>"]
    for s in a.gone_quiet:
        lines.append("  • " + _("{title}: no activity for 7 days").format(title=quote(s.title)))
    for _chat, title in a.removed:
        lines.append("  • " + _("{title}: the bot was removed").format(title=quote(title)))
    if not a.gone_quiet and not a.removed:
        lines.append(_("None"))
    lines += [
        "",
        "⚠️ <b>" + _("Failed sends in the last 24 h: {n}").format(n=a.failures_total) + "</b>",
    ]
    for f in a.failures:
        where = quote(f.title) if f.title else f"<code>{f.chat_id}</code>"
        reason = quote(f.reason[:100])
        lines.append(f"  • {where} ×{f.count}: {reason}")
    return _fit("\n".join(lines))


def arg_error_text(err: DigestArgError) -> str:
    examples = _(
        "Examples: <code>/digest</code> (yesterday), <code>/digest 2026-11-20</code>, "
        "<code>/digest 7d</code>, <code>/digest 30d</code>, "
        "<code>/digest 2026-11-01..2026-11-30</code>."
    )
    if err.code == "future":
        first = _("“{value}” is in the future: a digest covers days that have begun.").format(
            value=echo(err.value)
        )
    elif err.code == "too_long":
        first = _("“{value}” is too long: a digest covers at most 366 days.").format(
            value=echo(err.value)
        )
    elif err.code == "reversed":
        first = _("“{value}”: the end comes before the start.").format(value=echo(err.value))
    else:
        first = _("I do not understand “{value}” as a date or a range.").format(
            value=echo(err.value)
        )
    return first + "\n" + examples


def time_error_text(value: str) -> str:
    return _(
        "“{value}” is not a time of day. Use HH:MM (24 hours), for example "
        "<code>/digest time 1 08:30</code>."
    ).format(value=echo(value))
