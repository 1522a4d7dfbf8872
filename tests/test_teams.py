"""Team buys (拼团) through the real Dispatcher and the fake Bot API (services.teams,
handlers/teams.py, bot/team_cards.py): the owner's /teambuy, Start a team on the post, the
team card in the group and the link in private, joins from both, the team filling at the
team price (and invoiced in a paid deal), failing at its time or with its deal, leaving,
every refusal, replays, and simultaneous joins of one team on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiogram.methods import EditMessageText, SendInvoice
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from handlers.callbacks import DealCB, TeamCB
from models import Deal, Order, Team
from scheduler.jobs import TickResult, expire_teams
from services import teams
from services.parsing import ParseError
from services.timezones import utcnow
from tests.builders import person
from tests.test_deal_closing import close_now, started
from tests.test_deal_post import GROUP, OWNER, press, ready

ALICE = person(801, "Alice")
BOB = person(802, "Bob")
CAROL = person(803, "Carol")
DAVE = person(804, "Dave")
ERIN = person(805, "Erin")


async def team_deal(harness, rules: str = "3 8.00 24", **overrides) -> tuple[int, int]:
    """A published deal (¥12.50, stock 10 by default) whose owner set a team offer."""
    overrides.setdefault("stock", 10)
    group_id, deal_id = await ready(harness, **overrides)
    answer = await harness.say(OWNER, f"/teambuy D{deal_id} {rules}")
    assert answer.text.startswith(f"D{deal_id}: 👥 Team buy"), answer.text
    await harness.settle()
    return group_id, deal_id


async def start_team(harness, user, deal_id: int) -> Team:
    answer = await harness.tap(user, TeamCB(action="start", id=deal_id), GROUP)
    assert answer.text.startswith("Team started!"), answer.text
    async with harness.db.read() as s:
        return await s.scalar(
            select(Team).where(Team.deal_id == deal_id, Team.starter_id == user.id)
            .order_by(Team.id.desc())
        )  # fmt: skip


async def join(harness, user, team_id: int, chat=GROUP):
    return await harness.tap(user, TeamCB(action="join", id=team_id), chat)


async def team_row(harness, team_id: int) -> Team:
    async with harness.db.read() as s:
        return await s.get(Team, team_id)


async def orders(harness, deal_id: int) -> dict[int, tuple]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(Order).where(Order.deal_id == deal_id))
        return {o.user_id: (o.status, o.quantity, o.team_id, o.unit_price) for o in rows}


async def stock(harness, deal_id: int) -> tuple[int | None, int, int]:
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
        return deal.stock_left, deal.total_qty, deal.participants


def notes(harness, user) -> list[str]:
    return [m.text for m in harness.api.sent(user.id)]


# ---------------------------------------------------------------- the whole way


async def test_a_team_fills_from_the_group_and_from_its_link_at_the_team_price(harness) -> None:
    await started(harness, ALICE, BOB, CAROL)
    _group_id, deal_id = await team_deal(harness)
    post = harness.last_edit(GROUP)  # the post now offers teams
    assert "👥 Team buy: <b>CN¥8.00</b> each in a team of 3, filled within 24 h" in post.text
    assert "👥 Start a team (CN¥8.00)" in harness.buttons(post)
    assert "🙋 Join +1" in harness.buttons(post)  # buying alone too

    team = await start_team(harness, ALICE, deal_id)
    assert (team.size, team.price, team.members, team.status) == (3, 800, 1, "open")
    assert await orders(harness, deal_id) == {ALICE.id: ("active", 1, team.id, None)}
    assert await stock(harness, deal_id) == (9, 1, 1)
    await harness.settle()
    # the card: a reply to the deal's post, with Join / Leave / Invite friends
    [card] = [m for m in harness.api.sent(GROUP.id) if m.text.startswith("👥 <b>Team buy")]
    assert card.reply_parameters.message_id == 1  # the deal's post
    assert "In the team (1/3): Alice" in card.text and "2 places left" in card.text
    assert set(harness.buttons(card)) == {
        "🙋 Join this team",
        "Leave the team",
        "🔗 Invite friends",
    }
    link = f"https://t.me/tuan_test_bot?start=team_{team.code}"
    assert [b.url for row in card.reply_markup.inline_keyboard for b in row][-1] == link
    [started_note] = [t for t in notes(harness, ALICE) if "You started a team" in t]
    assert link in started_note and "2 more join" in started_note

    card_id = (await team_row(harness, team.id)).message_id
    assert card_id is not None
    answer = await join(harness, BOB, team.id)
    assert answer.text == "You're in the team (2/3): 1 more needed."
    await harness.settle()
    edited = [e for e in harness.api.of(EditMessageText) if e.message_id == card_id]
    assert "In the team (2/3): Alice, Bob" in edited[-1].text

    # Carol opens the link in private, sees the team and joins there: it fills
    await harness.send(CAROL, f"/start team_{team.code}")
    shown = harness.last(CAROL)
    assert "In the team (2/3): Alice, Bob" in shown.text and link in shown.text
    answer = await join(harness, CAROL, team.id, chat=None)
    assert answer.text.startswith("Team complete!") and answer.show_alert
    assert await orders(harness, deal_id) == {
        user.id: ("confirmed", 1, team.id, 800) for user in (ALICE, BOB, CAROL)
    }
    done = await team_row(harness, team.id)
    assert (done.status, done.members) == ("filled", 3) and done.closed_at is not None
    await harness.settle()
    for user in (ALICE, BOB, CAROL):
        [filled] = [t for t in notes(harness, user) if "Your team for" in t]
        assert "confirmed at CN¥8.00" in filled and "Pickup code: <code>" in filled
    last_card = [e for e in harness.api.of(EditMessageText) if e.message_id == card_id]
    assert "✅ <b>Team complete: orders confirmed at CN¥8.00</b>" in last_card[-1].text
    assert last_card[-1].reply_markup is None
    edits = harness.api.of(EditMessageText)
    post = [e for e in edits if (e.chat_id, e.message_id) == (GROUP.id, 1)]
    assert "1. Alice ×1 👥" in post[-1].text and "3. Carol ×1 👥" in post[-1].text
    assert await stock(harness, deal_id) == (7, 3, 3)


async def test_the_deal_closing_leaves_a_filled_team_alone_and_fails_an_open_one(harness) -> None:
    await started(harness, ALICE, BOB, CAROL, DAVE)
    _group_id, deal_id = await team_deal(
        harness, "2 8.00 24", min_kind="participants", min_value=10
    )
    filled = await start_team(harness, ALICE, deal_id)
    await join(harness, BOB, filled.id)
    waiting = await start_team(harness, CAROL, deal_id)
    assert (await press(harness, DAVE, deal_id)).text.startswith("You're in")
    closing = await close_now(harness, deal_id, OWNER.id)
    assert closing.outcome == "failed"  # 3 of the 10 participants
    assert [o.user_id for o in closing.orders] == [DAVE.id]  # the team's are not the deal's
    assert await orders(harness, deal_id) == {
        ALICE.id: ("confirmed", 1, filled.id, 800),
        BOB.id: ("confirmed", 1, filled.id, 800),
        CAROL.id: ("cancelled", 0, waiting.id, None),
        DAVE.id: ("failed", 1, None, None),
    }
    assert (await team_row(harness, waiting.id)).status == "failed"
    assert any("closed before your team filled" in t for t in notes(harness, CAROL))
    assert not any("did not reach" in t or "failed" in t.lower() for t in notes(harness, ALICE))


async def test_a_cancelled_deal_takes_its_filled_teams_with_it(harness) -> None:
    await started(harness, ALICE, BOB)
    _group_id, deal_id = await team_deal(harness, "2 8.00 24")
    team = await start_team(harness, ALICE, deal_id)
    await join(harness, BOB, team.id)
    closing = await close_now(harness, deal_id, OWNER.id, cancel=True)
    assert sorted(o.user_id for o in closing.orders) == [ALICE.id, BOB.id]
    assert {s for s, *_ in (await orders(harness, deal_id)).values()} == {"cancelled"}


# ---------------------------------------------------------------- failing, leaving


async def test_a_team_not_filled_in_time_fails_and_its_units_go_back(harness) -> None:
    await started(harness, ALICE, BOB)
    _group_id, deal_id = await team_deal(harness, "3 8.00 1")
    team = await start_team(harness, ALICE, deal_id)
    await join(harness, BOB, team.id)
    await harness.settle()  # its card is in the group (a team over before then gets none)
    assert await stock(harness, deal_id) == (8, 2, 2)
    assert team.expires_at <= utcnow() + timedelta(hours=1)

    result = TickResult()
    await expire_teams(harness.app, utcnow() + timedelta(minutes=30), result)
    assert result.teams_failed == 0  # not yet
    await expire_teams(harness.app, utcnow() + timedelta(hours=1, minutes=1), result)
    assert result.teams_failed == 1
    await expire_teams(harness.app, utcnow() + timedelta(hours=2), result)
    assert result.teams_failed == 1  # once
    assert (await team_row(harness, team.id)).status == "failed"
    assert await stock(harness, deal_id) == (10, 0, 0)
    await harness.settle()
    for user in (ALICE, BOB):
        assert any("did not fill in time" in t for t in notes(harness, user))
    card = [e for e in harness.api.of(EditMessageText) if e.text.startswith("👥")][-1]
    assert "❌ The team did not fill; its orders are cancelled" in card.text
    assert card.reply_markup is None
    # a late tap on the old card is refused; they may start another team
    late = await join(harness, ALICE, team.id)
    assert late.text == "This team is over. Start or join another one."
    again = await start_team(harness, BOB, deal_id)
    assert again.id != team.id and again.members == 1


async def test_leaving_gives_the_unit_back_and_an_empty_team_fails_quietly(harness) -> None:
    await started(harness, ALICE, BOB)
    _group_id, deal_id = await team_deal(harness)
    team = await start_team(harness, ALICE, deal_id)
    await join(harness, BOB, team.id)
    leave = TeamCB(action="leave", id=team.id)
    left = await harness.tap(BOB, leave, GROUP)
    assert left.text == "You left the team; your unit is back in stock."
    assert (await harness.tap(BOB, leave, GROUP)).text == "You are not in this team."
    assert (await team_row(harness, team.id)).members == 1
    assert await stock(harness, deal_id) == (9, 1, 1)
    await harness.tap(ALICE, leave, GROUP)
    done = await team_row(harness, team.id)
    assert (done.status, done.members) == ("failed", 0)
    await harness.settle()
    assert not any("did not fill" in t for t in notes(harness, ALICE))  # they left it
    assert await stock(harness, deal_id) == (10, 0, 0)
    # Bob buys alone now: his old place does not hold him
    assert (await press(harness, BOB, deal_id)).text.startswith("You're in")


# ---------------------------------------------------------------- refusals


async def test_every_refusal_is_answered_and_changes_nothing(harness) -> None:
    await started(harness, ALICE, BOB, CAROL, DAVE, ERIN)
    _group_id, deal_id = await team_deal(harness, "2 8.00 24")
    assert (await press(harness, DAVE, deal_id)).text.startswith("You're in")  # alone
    team = await start_team(harness, ALICE, deal_id)
    before = (await orders(harness, deal_id), await stock(harness, deal_id))

    cases = [
        (DAVE, TeamCB(action="join", id=team.id), "cancel that order to join a team"),
        (DAVE, TeamCB(action="start", id=deal_id), "cancel that order to join a team"),
        (ALICE, TeamCB(action="join", id=team.id), "You are already in this team."),
        (ALICE, TeamCB(action="start", id=deal_id), "You are already in a team of this deal."),
        (ALICE, DealCB(action="cancel", deal_id=deal_id), "use the team's card to leave it"),
        (ALICE, DealCB(action="join", deal_id=deal_id), "use the team's card to leave it"),
        (ALICE, DealCB(action="qty", deal_id=deal_id, qty=2), "use the team's card to leave it"),
        (BOB, TeamCB(action="join", id=team.id + 100), "That team does not exist."),
        (BOB, TeamCB(action="leave", id=team.id), "You are not in this team."),
        (BOB, TeamCB(action="start", id=deal_id + 100), "no longer available"),
        (BOB, TeamCB(action="nope", id=team.id), "That team does not exist."),
    ]
    for user, data, expected in cases:
        answer = await harness.tap(user, data, GROUP)
        assert expected in answer.text and answer.show_alert, (data, answer.text)
    assert (await orders(harness, deal_id), await stock(harness, deal_id)) == before

    assert (await join(harness, BOB, team.id)).text.startswith("Team complete!")
    assert (await join(harness, CAROL, team.id)).text == "This team is already complete."
    # once filled, the plain buttons still refuse to change a team's order
    answer = await harness.tap(BOB, DealCB(action="cancel", deal_id=deal_id), GROUP)
    assert "use the team's card" in answer.text
    # a forged button: answered "out of date", nothing read
    await harness.feed(harness.updates.callback(ERIN, f"tm:join:{2**40}:0", chat=GROUP))
    assert harness.api.answers()[-1].text == "This button is out of date."


async def test_a_team_only_deal_refuses_buying_alone(harness) -> None:
    await started(harness, ALICE)
    _group_id, deal_id = await team_deal(harness, "2 8.00 24 only")
    post = harness.last_edit(GROUP)
    assert "teams only" in post.text
    assert "🙋 Join +1" not in harness.buttons(post)
    answer = await press(harness, ALICE, deal_id)
    assert answer.text == "This deal sells to teams only: start a team or join one."
    await harness.send(ALICE, f"/buy D{deal_id} 2", chat=GROUP)
    assert "teams only" in harness.last(GROUP).text
    assert await orders(harness, deal_id) == {}
    await start_team(harness, ALICE, deal_id)


async def test_a_replayed_join_changes_nothing(harness) -> None:
    _group_id, deal_id = await team_deal(harness)
    team = await start_team(harness, ALICE, deal_id)
    update = harness.updates.callback(BOB, TeamCB(action="join", id=team.id).pack(), chat=GROUP)
    await harness.feed(update)
    await harness.feed(update)
    assert (await team_row(harness, team.id)).members == 2
    assert len([a for a in harness.api.answers() if "You're in the team" in a.text]) == 1
    assert await stock(harness, deal_id) == (8, 2, 2)


async def test_teambuy_validates_its_rules_and_freezes_them_once_a_team_exists(harness) -> None:
    _group_id, deal_id = await ready(harness, stock=10)
    cases = [
        ("", "Usage: <code>/teambuy D12 3 8.50 24</code>"),
        (f"D{deal_id} 1 8.00 24", "A team has 2 to 50 members."),
        (f"D{deal_id} 51 8.00 24", "A team has 2 to 50 members."),
        (f"D{deal_id} 3 12.50 24", "below the deal's unit price"),
        (f"D{deal_id} 3 0 24", "The price must be more than zero"),
        (f"D{deal_id} 3 8.00 73", "A team has 1 to 72 hours to fill."),
        (f"D{deal_id} 3 8.00", "Usage:"),
        (f"D{deal_id} 11 8.00 24", "The deal's stock is smaller than one team."),
        (f"D{deal_id}", f"D{deal_id} offers no team buy."),
    ]
    for args, expected in cases:
        answer = await harness.say(OWNER, f"/teambuy {args}".strip())
        assert expected in answer.text, (args, answer.text)
    stranger = await harness.say(ALICE, f"/teambuy D{deal_id} 3 8.00 24")
    assert stranger.text == "That deal does not exist or is not yours."
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).team_size is None

    await harness.say(OWNER, f"/teambuy D{deal_id} 3 8.00 24h")
    await start_team(harness, ALICE, deal_id)
    for args in ("off", "4 7.00 12"):
        answer = await harness.say(OWNER, f"/teambuy D{deal_id} {args}")
        assert answer.text == (
            "A team has started on this deal: its team rules can no longer change."
        )
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
        assert (deal.team_size, deal.team_price, deal.team_hours) == (3, 800, 24)


# ---------------------------------------------------------------- payments


async def test_a_paid_team_is_invoiced_when_it_fills_not_when_joining(harness) -> None:
    await started(harness, ALICE, BOB)
    values = dict(pay_method="stars", digital=True, currency="XTR", unit_price=50)
    _group_id, deal_id = await team_deal(harness, "2 30 24", **values)  # a flash sale
    team = await start_team(harness, ALICE, deal_id)
    await harness.settle()
    assert harness.api.of(SendInvoice) == []  # a place is not a hold
    await join(harness, BOB, team.id)
    await harness.settle()
    invoices = {i.chat_id: i for i in harness.api.of(SendInvoice)}
    assert set(invoices) == {ALICE.id, BOB.id}
    assert {i.prices[0].amount for i in invoices.values()} == {30}
    async with harness.db.read() as s:
        rows = list(await s.scalars(select(Order).where(Order.team_id == team.id)))
    assert all(o.pay_by is not None and o.amount == 30 for o in rows)


# ---------------------------------------------------------------- concurrency


async def test_simultaneous_joins_of_one_team_fill_it_exactly_once(harness) -> None:
    _group_id, deal_id = await team_deal(harness, "3 8.00 24")
    team = await start_team(harness, ALICE, deal_id)
    crowd = [person(900 + n, f"P{n}") for n in range(12)]
    updates = [
        harness.updates.callback(p, TeamCB(action="join", id=team.id).pack(), chat=GROUP)
        for p in crowd
    ]
    before = len(harness.api.answers())
    await asyncio.gather(*(harness.feed(u) for u in updates))
    answers = harness.api.answers()[before:]
    assert len(answers) == 12  # every tap answered
    texts = sorted(a.text for a in answers)
    assert sum(t.startswith("You're in the team") for t in texts) == 1
    assert sum(t.startswith("Team complete!") for t in texts) == 1
    assert all(
        t in ("This team is already complete.", "This team is full. Start your own team!")
        for t in texts
        if not t.startswith(("You're in", "Team complete"))
    )
    done = await team_row(harness, team.id)
    assert (done.status, done.members) == ("filled", 3)
    async with harness.db.read() as s:
        confirmed = await s.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.team_id == team.id, Order.status == "confirmed")
        )
    assert confirmed == 3
    assert await stock(harness, deal_id) == (7, 3, 3)


async def test_a_team_is_never_completed_past_the_stock(harness) -> None:
    _group_id, deal_id = await team_deal(harness, "3 8.00 24", stock=4)
    first = await start_team(harness, ALICE, deal_id)
    second = await start_team(harness, BOB, deal_id)
    await join(harness, CAROL, first.id)
    answers = await asyncio.gather(
        *(harness.feed(harness.updates.callback(
            u, TeamCB(action="join", id=t.id).pack(), chat=GROUP))
          for u, t in ((DAVE, first), (ERIN, second)))
    )  # fmt: skip
    assert answers is not None
    rows = [await team_row(harness, t.id) for t in (first, second)]
    left, total, _people = await stock(harness, deal_id)
    assert left == 0 and total == 4 == sum(t.members for t in rows)
    # whichever took the last unit, the other was told and neither went past the stock
    assert "Sold out." in [a.text for a in harness.api.answers()]
    assert [t.status for t in rows].count("filled") == (rows[0].members == 3)
    assert all(t.status == "open" for t in rows if t.members < 3)


async def test_teams_are_counted_for_the_owner(harness) -> None:
    _group_id, deal_id = await team_deal(harness, "2 8.00 24")
    team = await start_team(harness, ALICE, deal_id)
    await join(harness, BOB, team.id)
    await start_team(harness, CAROL, deal_id)
    async with harness.db.read() as s:
        counted = await teams.counts(s, deal_id=deal_id)
    assert (counted.open, counted.filled, counted.failed) == (1, 1, 0)


async def test_the_owner_sees_teams_in_orders_and_exports(harness) -> None:
    import csv
    import io

    from aiogram import methods as m

    from handlers.callbacks import OrdersCB

    _group_id, deal_id = await team_deal(harness, "2 8.00 24")
    team = await start_team(harness, ALICE, deal_id)
    await join(harness, BOB, team.id)
    waiting = await start_team(harness, CAROL, deal_id)
    assert (await press(harness, DAVE, deal_id)).text.startswith("You're in")
    page = await harness.say(OWNER, f"/orders D{deal_id}")
    assert "👥 Teams: 1 open · 1 filled · 0 failed" in page.text
    # Expected: Dave alone at ¥12.50, Alice and Bob at ¥8.00, Carol's place at ¥8.00
    assert "Expected revenue: CN¥36.50" in page.text
    await harness.tap(OWNER, OrdersCB(action="csv", deal_id=deal_id))
    [request] = harness.api.of(m.SendDocument)
    table = list(csv.reader(io.StringIO(request.document.data.decode("utf-8-sig"))))
    assert table[0][-2:] == ["Team", "Bargain"]
    by_name = {row[2]: row for row in table[1:]}
    assert by_name["Alice"][-2] == f"{team.code} (filled)" and by_name["Alice"][5] == "8.00"
    assert by_name["Carol"][-2] == f"{waiting.code} (open)" and by_name["Carol"][6] == "8.00"
    assert by_name["Dave"][-2] == "" and by_name["Dave"][5] == "12.50"


async def test_the_digest_counts_teams(harness) -> None:
    from models import Group
    from services import digest
    from views.digest_texts import group_text

    group_id, deal_id = await team_deal(harness, "2 8.00 1")
    team = await start_team(harness, ALICE, deal_id)
    await join(harness, BOB, team.id)
    await start_team(harness, CAROL, deal_id)
    late = await start_team(harness, DAVE, deal_id)
    await expire_teams(harness.app, late.expires_at + timedelta(seconds=1), TickResult())
    await start_team(harness, ERIN, deal_id)
    now = utcnow()
    async with harness.db.read() as s:
        group = await s.get(Group, group_id)
        day = digest.local_today(now, group.timezone)
        built = await digest.build(s, group, digest.Period(day, day), now)
    assert (built.teams.filled, built.teams.failed, built.teams.open) == (1, 2, 1)
    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        assert "👥 Team buys: 1 filled, 2 failed, 1 open now" in group_text(built)


async def test_a_team_starts_from_the_deal_shown_in_private_too(harness) -> None:
    await started(harness, ALICE)
    group_id, deal_id = await team_deal(harness)
    await harness.send(ALICE, f"/start deal_{deal_id}")
    card = harness.last(ALICE)
    data = harness.buttons(card)["👥 Start a team (CN¥8.00)"]
    assert data == TeamCB(action="start", id=deal_id, group_id=group_id).pack()
    answer = await harness.tap(ALICE, data)
    assert answer.text.startswith("Team started!")
    async with harness.db.read() as s:
        team = await s.scalar(select(Team).where(Team.deal_id == deal_id))
    assert (team.group_id, team.starter_id, team.members) == (group_id, ALICE.id, 1)
    # a forged group for the private button: refused, nothing started
    answer = await harness.tap(BOB, TeamCB(action="start", id=deal_id, group_id=group_id + 9))
    assert answer.text == "This deal is no longer available in that group." and answer.show_alert


# ---------------------------------------------------------------- the rules' parser


def _deal(unit_price: int = 1250, stock: int | None = 10) -> Deal:
    return Deal(unit_price=unit_price, currency="CNY", stock_total=stock)


@given(
    size=st.integers(min_value=-5, max_value=60),
    price=st.integers(min_value=0, max_value=2000),
    hours=st.integers(min_value=-2, max_value=80),
    only=st.booleans(),
    suffix=st.sampled_from(["", "h", "H"]),
)
def test_teambuy_rules_parse_exactly_within_their_bounds(size, price, hours, only, suffix) -> None:
    words = [str(size), f"{price // 100}.{price % 100:02d}", f"{hours}{suffix}"]
    if only:
        words.append("ONLY")
    deal = _deal()
    valid = 2 <= size <= 10 and 0 < price < 1250 and 1 <= hours <= 72  # stock 10
    try:
        rules = teams.parse_rules(words, deal)
    except (teams.BadTeamRules, ParseError):
        assert not valid
        return
    assert valid
    assert rules == teams.Rules(size, price, hours, only)


@given(st.lists(st.text(max_size=12), max_size=6))
def test_teambuy_rules_never_raise_anything_but_a_refusal(words) -> None:
    try:
        rules = teams.parse_rules(words, _deal(stock=None))
    except (teams.BadTeamRules, ParseError):
        return
    if rules is not None:
        assert 2 <= rules.size <= 50 and 0 < rules.price < 1250 and 1 <= rules.hours <= 72


@given(st.text(max_size=40))
def test_team_links_parse_only_their_own_shape(payload) -> None:
    code = teams.parse_link(payload)
    if code is not None:
        assert payload == "team_" + code and len(code) == 10 and code.isascii() and code.isalnum()
    assert teams.parse_link("team_" + teams.new_code()) is not None
