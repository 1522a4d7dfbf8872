"""Texts of lotteries (services.lotteries): the group posts (announcement with the
commitment, the closing with the entry list and its hash, the draw with the secret and the
winners, redraws), the winners' and the owner's notes, the owner's /lottery, the buttons'
answers and the refusals. HTML; user text is escaped here."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Group, Lottery, LotteryWinner
from services import lotteries
from services.errors import DomainError
from services.lotteries import Drawn
from views.format import ALERT_LIMIT, cut, echo, post_time, quote

NAME_MAX = 32
INLINE_TICKETS = 150  # more than this: the list goes as a document (tickets-L<id>.txt)
VERIFY = "python -m bot verify-lottery"


def code(lottery: Lottery) -> str:
    return f"L{lottery.id}"


def rule_text(lottery: Lottery) -> str:
    n = lottery.rule_n or 0
    if lottery.rule == "deal":
        return _("members who picked up or got delivered an order of D{deal}").format(deal=n)
    if lottery.rule == "bought":
        return ngettext(
            "members with an order placed here in the last {n} day, picked up or delivered",
            "members with an order placed here in the last {n} days, picked up or delivered",
            n,
        ).format(n=n)
    if lottery.rule == "active":
        return ngettext(
            "members active here on at least {n} of the last 14 days",
            "members active here on at least {n} of the last 14 days",
            n,
        ).format(n=n)
    return _("every member")


def enter_label() -> str:
    return "🎟 " + _("Enter the lottery")


def claim_label() -> str:
    return "🎁 " + _("Claim my prize")


def _name(drawn: Drawn) -> str:
    if drawn.shown and drawn.user is not None:
        return quote(cut(drawn.user.full_name, NAME_MAX))
    return _("a member")


def _ticket(ticket: str) -> str:
    return f"<code>{ticket}</code>"


def announce_text(lottery: Lottery, group: Group, language: str) -> str:
    """The lottery's post in the group: the prize, the rules and the commitment."""
    lines = [
        "🎁 <b>" + _("Lottery {code}").format(code=code(lottery)) + "</b>",
        _("Prize: {prize}").format(prize=quote(lottery.prize)),
        ngettext("{n} winner", "{n} winners", lottery.winners).format(n=lottery.winners),
        _("Who may enter: {rule}").format(rule=rule_text(lottery)),
        _("Entries close: {when}").format(
            when=post_time(lottery.closes_at, group.timezone, language)
        ),
        ngettext(
            "Winners claim their prize within {n} hour, or it is drawn again.",
            "Winners claim their prize within {n} hours, or it is drawn again.",
            lottery.claim_hours,
        ).format(n=lottery.claim_hours),
        "",
        _("Commitment (SHA-256 of the secret the draw will use): {hash}").format(
            hash=_ticket(lottery.commitment)
        ),
        _(
            "Each entry gets a ticket code; when entries close I post every ticket and the "
            "hash of the list, then reveal the secret: anyone can re-check the draw."
        ),
    ]
    return "\n".join(lines)


def closed_text(lottery: Lottery, tickets: list[str], inline: bool) -> str:
    lines = [
        "🔒 <b>" + _("Lottery {code}: entries closed").format(code=code(lottery)) + "</b>",
        quote(cut(lottery.prize, 80)),
        ngettext("{n} entry.", "{n} entries.", len(tickets)).format(n=len(tickets)),
        _("SHA-256 of the sorted ticket list: {hash}").format(
            hash=_ticket(lottery.entries_hash or "")
        ),
        _("The secret is revealed at the draw, in a few minutes."),
    ]
    if inline and tickets:
        lines += ["", _("Tickets:"), "<code>" + "\n".join(tickets) + "</code>"]
    elif tickets:
        lines += ["", _("The ticket list is in the file below.")]
    return "\n".join(lines)


def closed_caption(lottery: Lottery) -> str:
    return _("Lottery {code}: the sorted ticket list (SHA-256 {hash})").format(
        code=code(lottery), hash=lottery.entries_hash
    )


def _verify_line(lottery: Lottery) -> str:
    return _("Re-check it: {command}").format(
        command=(
            f"<code>{VERIFY} --commitment {lottery.commitment} --secret {lottery.secret} "
            f"--entries tickets.txt --winners {lottery.winners} "
            f"--entries-hash {lottery.entries_hash}</code>"
        )
    )


def drawn_text(lottery: Lottery, drawn: list[Drawn]) -> str:
    lines = [
        "🎉 <b>" + _("Lottery {code}: the draw").format(code=code(lottery)) + "</b>",
        _("Prize: {prize}").format(prize=quote(cut(lottery.prize, 120))),
        _("Secret: {secret}").format(secret=_ticket(lottery.secret)),
    ]
    if not drawn:
        lines.append(_("Nobody entered, so nobody wins this time."))
    else:
        lines.append(ngettext("Winner:", "Winners:", len(drawn)))
        for one in drawn:
            lines.append(
                _("{seq}. {name} (ticket {ticket})").format(
                    seq=one.winner.seq, name=_name(one), ticket=_ticket(one.winner.ticket)
                )
            )
        lines.append(_("Winners: I have told you in private; claim your prize there."))
    lines += ["", _verify_line(lottery)]
    return "\n".join(lines)


def redraw_text(lottery: Lottery, lapsed: Drawn | None, following: Drawn | None) -> str:
    old = _ticket(lapsed.winner.ticket) if lapsed is not None else "—"
    head = "🔁 <b>" + _("Lottery {code}: redraw").format(code=code(lottery)) + "</b>"
    if following is None:
        return "\n".join(
            [
                head,
                _("Ticket {ticket} did not claim in time, and no ticket is left to draw.").format(
                    ticket=old
                ),
            ]
        )
    return "\n".join(
        [
            head,
            _(
                "Ticket {ticket} did not claim in time. Draw {seq} picks {name} (ticket {new})."
            ).format(
                ticket=old,
                seq=following.winner.seq,
                name=_name(following),
                new=_ticket(following.winner.ticket),
            ),
            _("Same secret and entry list: re-check it with --draws {n}.").format(
                n=following.winner.seq
            ),
        ]
    )


def won_text(lottery: Lottery, winner: LotteryWinner, group: Group, language: str) -> str:
    return "\n".join(
        [
            "🎉 "
            + _("You won the lottery {code} in {group}!").format(
                code=code(lottery), group=quote(cut(group.title, 64))
            ),
            _("Prize: {prize}").format(prize=quote(lottery.prize)),
            _("Your ticket: {ticket}").format(ticket=_ticket(winner.ticket)),
            _("Claim it before {when} with the button below, or it goes to a redraw.").format(
                when=post_time(winner.claim_by, group.timezone, language)
            ),
        ]
    )


def claimed_note(lottery: Lottery, drawn: Drawn) -> str:
    """To the lottery's owner: a winner claimed (they arrange the prize)."""
    user = drawn.user
    who = quote(cut(user.full_name, NAME_MAX)) if user is not None else _("a member")
    if user is not None and user.username:
        who += f" (@{quote(user.username)})"
    return _("🎁 {name} claimed the prize of lottery {code} (ticket {ticket}): {prize}").format(
        name=who,
        code=code(lottery),
        ticket=_ticket(drawn.winner.ticket),
        prize=quote(cut(lottery.prize, 120)),
    )


def entered_text(entered: lotteries.Entered) -> str:
    ticket = entered.entry.ticket
    if entered.created:
        text = _("You're in! Your ticket: {ticket}. The winners are drawn after {code} closes.")
    else:
        text = _("You already entered: your ticket is {ticket}.")
    return cut(text.format(ticket=ticket, code=code(entered.lottery)), ALERT_LIMIT)


def claim_answer(created: bool) -> str:
    if created:
        return _("Claimed! The organiser has been told and will contact you.")
    return _("You already claimed this prize.")


def usage_text() -> str:
    return _(
        "Usage: <code>/lottery 1 3 2d Mango box</code>: in your group 1, 3 winners, entries "
        "for 2 days. Options before the prize: <code>claim 24</code> (hours to claim, "
        "default 48), and who may enter: <code>any</code>, <code>deal D17</code> (a picked-up "
        "or delivered order of D17), <code>bought 30</code> (such an order in the last 30 "
        "days) or <code>active 5</code> (active on 5 of the last 14 days). The deadline: "
        "<code>90m</code>, <code>36h</code>, <code>1d12h</code> or a date "
        "<code>2026-12-24</code> / <code>2026-12-24T18:30</code>. <code>/lottery L3</code>: "
        "one lottery."
    )


def _status(lottery: Lottery) -> str:
    return {
        "open": _("open"),
        "closed": _("entries closed"),
        "drawn": _("drawn"),
    }.get(lottery.status, lottery.status)


def owner_text(groups: list[Group], listed: list[Lottery], language: str) -> str:
    """/lottery without arguments: the owner's groups (numbered) and recent lotteries."""
    lines = ["🎁 <b>" + _("Lotteries") + "</b>", usage_text(), ""]
    if not groups:
        lines.append(_("You manage no group yet."))
    for index, group in enumerate(groups, start=1):
        lines.append(f"{index}. {quote(cut(group.title, 64))}")
    titles = {g.id: g for g in groups}
    if listed:
        lines += ["", _("Recent lotteries:")]
    for lottery in listed:
        group = titles.get(lottery.group_id)
        when = post_time(lottery.closes_at, group.timezone, language) if group else ""
        lines.append(
            _("{code} · {prize} · {status} · {n} entries · closes {when}").format(
                code=code(lottery),
                prize=quote(cut(lottery.prize, 40)),
                status=_status(lottery),
                n=lottery.entries,
                when=when,
            )
        )
    return "\n".join(lines)


def detail_text(lottery: Lottery, group: Group, drawn: list[Drawn], language: str) -> str:
    """/lottery L3 for its owner: the rules, the published values and the winners by name."""
    lines = [
        announce_text(lottery, group, language),
        "",
        _("Status: {status} · {n} entries").format(status=_status(lottery), n=lottery.entries),
    ]
    if lottery.entries_hash:
        lines.append(_("Entries hash: {hash}").format(hash=_ticket(lottery.entries_hash)))
    states = {"pending": _("to claim"), "claimed": _("claimed"), "lapsed": _("lapsed")}
    for one in drawn:
        user = one.user
        name = quote(cut(user.full_name, NAME_MAX)) if user is not None else _("a member")
        if user is not None and user.username:
            name += f" (@{quote(user.username)})"
        lines.append(
            _("{seq}. {name} · ticket {ticket} · {status}").format(
                seq=one.winner.seq,
                name=name,
                ticket=_ticket(one.winner.ticket),
                status=states.get(one.winner.status, one.winner.status),
            )
        )
    return "\n".join(lines)


def created_text(lottery: Lottery, group: Group) -> str:
    return _("Lottery {code} created: I am announcing it in {group}.").format(
        code=code(lottery), group=quote(cut(group.title, 64))
    )


def lottery_error_text(err: DomainError) -> str | None:
    """The sentence for a refusal of lotteries (None: not one of them)."""
    if isinstance(err, lotteries.LotteryNotFound):
        return _("That lottery does not exist.")
    if isinstance(err, lotteries.LotteryClosed):
        return _("Entries to this lottery are closed.")
    if isinstance(err, lotteries.NotAPerson):
        return _("Only people can enter a lottery.")
    if isinstance(err, lotteries.NotWinner):
        return _("You did not win this lottery.")
    if isinstance(err, lotteries.ClaimOver):
        return _("The time to claim this prize is over: it went to a redraw.")
    if isinstance(err, lotteries.NotEligible):
        return _("This lottery is for {rule}.").format(rule=rule_text_of(err.rule, err.n))
    if isinstance(err, lotteries.BadLottery):
        value = echo(err.value)
        return {
            "usage": usage_text(),
            "winners": _("A lottery has 1 to {n} winners.").format(n=lotteries.MAX_WINNERS),
            "deadline": _(
                "“{value}” is not a deadline I can use: 10 minutes to 30 days ahead, such as "
                "<code>36h</code> or <code>2026-12-24</code>."
            ).format(value=value),
            "claim": _("The claim window is 1 to 168 hours."),
            "deal": _("“{value}” is not a deal posted in that group.").format(value=value),
            "bought": _("The order period is 1 to 365 days."),
            "active": _("The active days are 1 to 14."),
            "prize": _("Write the prize after the options, 1 to 200 characters."),
        }[err.what]
    return None


def rule_text_of(rule: str, n: int | None) -> str:
    return rule_text(Lottery(rule=rule, rule_n=n))
