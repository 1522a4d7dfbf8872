"""Texts of coupons and coupon packs (services.coupons): the owner's /coupon, the members'
/coupons, Claim buttons' answers, pack links and their notes, and the refusals. HTML."""

from __future__ import annotations

from datetime import datetime

from aiogram.utils.i18n import gettext as _

from models import Coupon, CouponClaim, Group
from services import coupons
from services.coupons import Held, Switchable
from services.errors import DomainError
from views.format import echo, money, post_time, quote

__all__ = [
    "claim_label",
    "claimed_text",
    "coupon_error_text",
    "created_text",
    "ended_text",
    "member_text",
    "none_label",
    "owner_text",
    "pack_note_text",
    "pack_opened_text",
    "rule_text",
    "switch_label",
    "switched_text",
    "usage_text",
]


def off_text(coupon: Coupon, language: str) -> str:
    if coupon.kind == "percent":
        # the sign comes with the number: "% o" would read as a printf conversion to gettext
        return _("{percent} off").format(percent=f"{coupon.value}%")
    return _("{amount} off").format(amount=money(coupon.value, coupon.currency, language))


def rule_text(coupon: Coupon, language: str, timezone: str, deals: set[int] | None = None) -> str:
    """One line: the coupon's code and every rule, visible before anyone claims it."""
    parts = [f"<b>{coupon.code}</b> " + off_text(coupon, language)]
    if coupon.min_order:
        parts.append(
            _("orders from {amount}").format(
                amount=money(coupon.min_order, coupon.currency, language)
            )
        )
    if coupon.valid_until is not None:
        parts.append(
            _("valid until {when}").format(when=post_time(coupon.valid_until, timezone, language))
        )
    else:
        parts.append(_("valid {days} days after claiming").format(days=coupon.valid_days))
    if deals:
        parts.append(_("only {deals}").format(deals=", ".join(f"D{d}" for d in sorted(deals))))
    parts.append(_("{n} per member").format(n=coupon.per_member))
    parts.append(_("{claimed}/{total} claimed").format(claimed=coupon.claimed, total=coupon.total))
    if coupon.pack:
        parts.append(_("coupon pack reward"))
    if coupon.ended_at is not None:
        parts.append(_("ended"))
    return " · ".join(parts)


def claim_label(coupon: Coupon, language: str) -> str:
    return "🎟 " + _("Claim {code} ({off})").format(code=coupon.code, off=off_text(coupon, language))


def claimed_text(claim: CouponClaim, coupon: Coupon, timezone: str, language: str) -> str:
    return _(
        "🎟 Coupon {code} is yours ({off}), valid until {when}. The best coupon is used on "
        "your next order by itself; /coupons to choose another."
    ).format(
        code=coupon.code,
        off=off_text(coupon, language),
        when=post_time(claim.expires_at, timezone, language),
    )


def usage_text() -> str:
    return _(
        "Create a coupon for one of your groups (its number in the list below):\n"
        "<code>/coupon 1 5.00 min 30 days 7 limit 1 total 100</code>\n"
        "<code>/coupon 1 10% until 2026-12-31 total 50 deals D3,D4</code>\n"
        "Amount or percent off (at most 90 %), minimum order, valid N days after claiming or "
        "until a date, per-member limit, total, only some deals. Add <code>pack</code> to make "
        "it the reward of coupon packs (a friend's first order). Rules cannot change later; "
        "<code>/coupon end C5</code> stops new claims."
    )


def owner_text(
    groups: list[Group],
    listed: list[Coupon],
    language: str,
    scope: dict[int, set[int]] | None = None,
) -> str:
    lines = [usage_text(), ""]
    by_group = {g.id: g for g in groups}
    for number, group in enumerate(groups, start=1):
        lines.append(f"{number}. <b>{quote(group.title)}</b>")
        for coupon in listed:
            if coupon.group_id == group.id:
                tz = by_group[group.id].timezone
                deals = (scope or {}).get(coupon.id)
                lines.append("   " + rule_text(coupon, language, tz, deals))
    if not groups:
        lines.append(_("You do not run any group yet."))
    return "\n".join(lines)


def created_text(coupon: Coupon, group: Group, language: str, deals: set[int]) -> str:
    head = _("Coupon created in {title}:").format(title=quote(group.title))
    tail = (
        _("Members get it through coupon packs (/coupons in private chat).")
        if coupon.pack
        else _("Members claim it with /coupons (in the group or in private chat).")
    )
    return f"{head}\n{rule_text(coupon, language, group.timezone, deals)}\n{tail}"


def ended_text(coupon: Coupon) -> str:
    return _("Coupon {code} takes no new claims; claims made stay valid.").format(code=coupon.code)


def _claim_line(held: Held, timezone_of: dict[int, str], language: str, now: datetime) -> str:
    claim, coupon = held.claim, held.coupon
    tz = timezone_of.get(coupon.group_id, "UTC")
    line = f"{coupon.code} " + off_text(coupon, language)
    if claim.order_id is not None:
        return (
            line
            + " · "
            + _("used on {deal} (−{amount})").format(
                deal=held.deal_code or "—", amount=money(claim.discount, coupon.currency, language)
            )
        )
    if claim.redeemed_at is not None or claim.expires_at <= now:
        return line + " · " + _("expired")
    return (
        line
        + " · "
        + _("valid until {when}").format(when=post_time(claim.expires_at, tz, language))
    )


def member_text(
    groups: list[Group],
    open_coupons: list[Coupon],
    held: list[Held],
    switches: list[Switchable],
    packs: dict[int, str],
    language: str,
    now: datetime,
    scope: dict[int, set[int]] | None = None,
) -> str:
    """/coupons in private chat: coupons to claim, the member's own, their orders' coupons,
    and their pack links."""
    tz = {g.id: g.timezone for g in groups}
    title = {g.id: g.title for g in groups}
    lines = ["🎟 <b>" + _("Coupons") + "</b>"]
    if open_coupons:
        lines.append(_("To claim:"))
        for coupon in open_coupons:
            lines.append(
                f"• {quote(title.get(coupon.group_id, ''))}: "
                + rule_text(
                    coupon, language, tz.get(coupon.group_id, "UTC"), (scope or {}).get(coupon.id)
                )
            )
    else:
        lines.append(_("No coupons to claim in your groups right now."))
    if held:
        lines += ["", _("Yours:")]
        lines += ["• " + _claim_line(h, tz, language, now) for h in held]
    for item in switches:
        lines.append("")
        current = (
            money(item.order.coupon_discount, item.deal.currency, language)
            if item.current is not None
            else _("none")
        )
        lines.append(
            _("{deal}: coupon discount {amount}. Tap a button to use another coupon.").format(
                deal=item.deal.code, amount=current
            )
        )
    for group_id, link in packs.items():
        lines += [
            "",
            _(
                "🎁 Coupon pack of {title}: a friend who never ordered there opens this link; "
                "when their first order is handed over, you both get a coupon: {link}"
            ).format(title=quote(title.get(group_id, "")), link=link),
        ]
    return "\n".join(lines)


def switch_label(item: Switchable, coupon: Coupon, discount: int, language: str) -> str:
    return _("{deal}: use {code} (−{amount})").format(
        deal=item.deal.code, code=coupon.code, amount=money(discount, coupon.currency, language)
    )


def none_label(item: Switchable) -> str:
    return _("{deal}: no coupon").format(deal=item.deal.code)


def switched_text() -> str:
    return _("Done: the order's coupon is changed.")


def group_text(
    open_coupons: list[Coupon],
    group: Group,
    language: str,
    scope: dict[int, set[int]] | None = None,
) -> str:
    if not open_coupons:
        return _("No coupons to claim in this group right now.")
    lines = ["🎟 <b>" + _("Coupons of {title}").format(title=quote(group.title)) + "</b>"]
    lines += [
        "• " + rule_text(c, language, group.timezone, (scope or {}).get(c.id)) for c in open_coupons
    ]
    return "\n".join(lines)


def pack_opened_text(group: Group, coupon: Coupon, language: str) -> str:
    return _(
        "🎁 You opened a coupon pack of {title}. When your first order there is handed over, "
        "you and the friend who sent it each get a coupon: {rule}"
    ).format(title=quote(group.title), rule=rule_text(coupon, language, group.timezone))


def pack_note_text(coupon: Coupon, claim: CouponClaim, group: Group | None, language: str) -> str:
    tz = group.timezone if group is not None else "UTC"
    return _(
        "🎁 A coupon pack paid off: coupon {code} ({off}) is yours, valid until {when}. See "
        "/coupons."
    ).format(
        code=coupon.code,
        off=off_text(coupon, language),
        when=post_time(claim.expires_at, tz, language),
    )


def coupon_error_text(err: DomainError) -> str | None:
    """The sentence for a refusal of coupons (None: not one of them)."""
    if isinstance(err, coupons.CouponNotFound):
        return _("That coupon does not exist.")
    if isinstance(err, coupons.CouponsGone):
        return _("All of these coupons have been claimed.")
    if isinstance(err, coupons.CouponEnded):
        return _("This coupon can no longer be claimed.")
    if isinstance(err, coupons.ClaimLimit):
        return _("You already have as many of this coupon as a member may claim ({n}).").format(
            n=err.limit
        )
    if isinstance(err, coupons.CannotUse):
        if err.reason == "order":
            return _("That order cannot change its coupon now (paid, handed over or closed).")
        return _("That coupon cannot be used on this order.")
    if isinstance(err, coupons.PackRefused):
        return {
            "unknown": _("This coupon pack link is unknown or no longer valid."),
            "self": _("This is your own coupon pack: send it to a friend."),
            "ordered": _("Coupon packs are for people who have not ordered in that group yet."),
            "taken": _("You already opened another member's coupon pack in that group."),
            "none": _("That group has no coupon pack to give right now."),
        }.get(err.reason, _("This coupon pack link is unknown or no longer valid."))
    if isinstance(err, coupons.BadCoupon):
        what = {
            "value": _("“{value}” is not an amount or a percent (such as 5.00 or 10%)."),
            "percent": _("A percent off is 1 to 90 %; “{value}” is not."),
            "min": _("“{value}” is not a minimum order amount."),
            "days": _("Validity in days is 1 to 365; “{value}” is not."),
            "until": _("“{value}” is not a date ahead (YYYY-MM-DD, within a year)."),
            "limit": _("The per-member limit is 1 to 100; “{value}” is not."),
            "total": _("The total is 1 to 100000; “{value}” is not."),
            "deals": _("“{value}”: name deals of that group, such as D3,D4."),
            "both_validity": _("Choose days or until, not both."),
            "pack_scope": _("A pack coupon applies to every deal of the group."),
        }.get(err.what)
        if what is None:
            return usage_text()
        return what.format(value=echo(err.value))
    return None
