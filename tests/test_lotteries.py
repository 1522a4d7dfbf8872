"""Lotteries (抽奖): the owner's /lottery, the announcement with its commitment, entries by the
Enter button (once per member, a ticket each, eligibility rules), the closing with the
published entry list and its hash, the draw revealing the secret, winners told in private
and named in the group only without /hideme, claims, redraws of lapsed winners from the
same published inputs, and the verification command re-checking a draw; replays and many
simultaneous entries change each thing exactly once."""

from __future__ import annotations

import asyncio
import io
import re
import sys
from contextlib import redirect_stdout
from datetime import date, timedelta
from pathlib import Path

import pytest
from aiogram.methods import SendDocument
from aiogram.types import User as TgUser
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.verify_lottery import main as verify_main
from handlers.callbacks import LotteryCB
from models import (
    Group,
    Lottery,
    LotteryEntry,
    LotteryWinner,
    MemberActivityDay,
    Order,
    OutboxMessage,
    User,
)
from scheduler.jobs import TickResult, run_lotteries
from services import digest, lotteries, lottery_draw, privacy
from services.timezones import utcnow
from tests.builders import person, private
from tests.test_deal_post import GROUP, OWNER, add_group, create_deal, publish_deal

ALICE = person(601, "Alice")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")
DAVE = person(604, "Dave")
ROBOT = TgUser(id=777_000_001, is_bot=True, first_name="Robo")
ROOT = Path(__file__).resolve().parent.parent
TICKET = re.compile(r"\b[0-9a-f]{8}\b")
HEX64 = re.compile(r"[0-9a-f]{64}")
tickets_strategy = st.lists(
    st.text(alphabet="0123456789abcdef", min_size=8, max_size=8), unique=True, max_size=60
)
secrets_strategy = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


# ---------------------------------------------------------------- the draw, pure


@settings(max_examples=200, deadline=None)
@given(tickets=tickets_strategy, secret=secrets_strategy, n=st.integers(1, 80), data=st.data())
def test_winners_are_distinct_as_many_as_possible_deterministic_and_order_free(
    tickets, secret, n, data
) -> None:
    drawn = lottery_draw.draw(secret, tickets, n)
    assert len(drawn) == min(n, len(tickets))
    assert len(set(drawn)) == len(drawn) and set(drawn) <= set(tickets)
    shuffled = data.draw(st.permutations(tickets))
    assert lottery_draw.draw(secret, list(shuffled), n) == drawn  # only the sorted list counts
    # a redraw continues the same sequence: the first n draws never change
    assert lottery_draw.draw(secret, tickets, n + 3)[: len(drawn)] == drawn


@settings(max_examples=60, deadline=None)
@given(tickets=tickets_strategy, secret=secrets_strategy, n=st.integers(1, 10))
def test_the_verification_command_agrees_with_the_draw(tmp_path_factory, tickets, secret, n):
    path = tmp_path_factory.mktemp("v") / "tickets.txt"
    path.write_text(lottery_draw.entries_text(tickets), "ascii")
    args = ["--commitment", lottery_draw.commitment_of(secret), "--secret", secret]
    args += ["--entries", str(path), "--winners", str(n)]
    args += ["--entries-hash", lottery_draw.entries_hash(tickets)]
    out = io.StringIO()
    with redirect_stdout(out):
        code = verify_main(args)
    assert code == 0, out.getvalue()
    listed = re.findall(r"^\d+\. ([0-9a-f]{8}) \(winner\)$", out.getvalue(), re.M)
    assert listed == lottery_draw.draw(secret, tickets, n)


def test_the_recipe_is_the_documented_one() -> None:
    """The README's shell recipe: SHA-256 over ASCII hex and text lines."""
    import hashlib

    secret = "ab" * 32
    tickets = ["0000000f", "00000001", "ffffffff"]
    text = "00000001\n0000000f\nffffffff\n"
    assert lottery_draw.entries_text(tickets) == text
    hashed = hashlib.sha256(text.encode()).hexdigest()
    assert lottery_draw.entries_hash(tickets) == hashed
    assert lottery_draw.commitment_of(secret) == hashlib.sha256(secret.encode()).hexdigest()
    first = int(hashlib.sha256(f"{secret}:{hashed}:0".encode()).hexdigest(), 16) % 3
    assert lottery_draw.draw(secret, tickets, 1) == [sorted(tickets)[first]]
    assert lottery_draw.draw(secret, [], 3) == []
    assert lottery_draw.parse_entries(" 00000001\n\nFFFFFFFF \n") == ["00000001", "ffffffff"]
    for bad in ("xyz\n", "00000001\n00000001\n", "123456789\n"):
        with pytest.raises(ValueError):
            lottery_draw.parse_entries(bad)


def test_the_verification_command_refuses_a_wrong_secret_or_hash(tmp_path) -> None:
    secret, other = "12" * 32, "34" * 32
    path = tmp_path / "t.txt"
    path.write_text("00000001\n00000002\n", "ascii")
    good = ["--commitment", lottery_draw.commitment_of(secret), "--entries", str(path)]
    with redirect_stdout(io.StringIO()) as out:
        assert verify_main([*good, "--secret", other, "--winners", "1"]) == 1
    assert "commitment: MISMATCH" in out.getvalue()
    with redirect_stdout(io.StringIO()) as out:
        code = verify_main(
            [*good, "--secret", secret, "--winners", "1", "--entries-hash", "0" * 64]
        )
    assert code == 1 and "MISMATCH with the published hash" in out.getvalue()
    with redirect_stdout(io.StringIO()):
        assert verify_main([*good, "--secret", "nothex", "--winners", "1"]) == 2
        assert verify_main([*good, "--secret", secret, "--winners", "0"]) == 2
        path.write_text("not a ticket\n")
        assert verify_main([*good, "--secret", secret, "--winners", "1"]) == 2


# ---------------------------------------------------------------- the owner's rules, pure


def _group(timezone: str = "Asia/Shanghai") -> Group:
    return Group(chat_id=-1, title="G", timezone=timezone, currency="CNY", language="en")


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "1",
                    "3",
                    "100",
                    "101",
                    "0",
                    "2d",
                    "36h",
                    "1d12h",
                    "90m",
                    "5m",
                    "31d",
                    "claim",
                    "24",
                    "169",
                    "deal",
                    "D17",
                    "bought",
                    "30",
                    "366",
                    "active",
                    "5",
                    "15",
                    "any",
                    "2026-12-24",
                    "2026-13-01",
                    "2026-12-24T18:30",
                    "Mango",
                    "box",
                ]
            ),  # fmt: skip
            st.text(max_size=12),
        ),
        max_size=9,
    )
)
def test_lottery_rules_parse_within_their_bounds_or_refuse(words) -> None:
    now = utcnow().replace(year=2026, month=12, day=1)
    try:
        spec = lotteries.parse_spec(words, _group(), now)
    except lotteries.BadLottery as err:
        assert err.what in ("usage", "winners", "deadline", "claim", "deal", "bought", "active",
                            "prize")  # fmt: skip
        return
    assert 1 <= spec.winners <= lotteries.MAX_WINNERS
    assert now + lotteries.MIN_AHEAD <= spec.closes_at <= now + lotteries.MAX_AHEAD
    assert 1 <= spec.claim_hours <= 168
    assert spec.rule in lotteries.RULES
    assert 0 < len(spec.prize) <= lotteries.PRIZE_MAX
    if spec.rule == "active":
        assert 1 <= (spec.rule_n or 0) <= 14


def test_lottery_rules_read_each_option() -> None:
    now = utcnow().replace(year=2026, month=12, day=1, hour=0, minute=0, second=0, microsecond=0)
    spec = lotteries.parse_spec("3 1d12h claim 24h active 5 Mango box".split(), _group(), now)
    assert (spec.winners, spec.claim_hours, spec.rule, spec.rule_n, spec.prize) == (
        3, 24, "active", 5, "Mango box"
    )  # fmt: skip
    assert spec.closes_at == now + timedelta(days=1, hours=12)
    spec = lotteries.parse_spec("1 2026-12-24T18:30 deal D17 A <b>gift</b>".split(), _group(), now)
    assert (spec.rule, spec.rule_n, spec.prize) == ("deal", 17, "A <b>gift</b>")
    assert spec.closes_at.isoformat() == "2026-12-24T10:30:00+00:00"  # Shanghai 18:30
    spec = lotteries.parse_spec("2 2026-12-24 any bought 30".split(), _group(), now)
    assert (spec.rule, spec.prize) == ("any", "bought 30")  # one rule; the rest is the prize
    for words, what in (
        ("0 2d x", "winners"),
        ("1 5m x", "deadline"),
        ("1 31d x", "deadline"),
        ("1 2d claim 0 x", "claim"),
        ("1 2d active 15 x", "active"),
        ("1 2d bought 400 x", "bought"),
        ("1 2d", "usage"),
        ("1 2d claim 24", "prize"),
        ("1 2d " + "x" * 201, "prize"),
    ):
        with pytest.raises(lotteries.BadLottery) as caught:
            lotteries.parse_spec(words.split(), _group(), now)
        assert caught.value.what == what, words


# ---------------------------------------------------------------- helpers


async def lottery_in(harness, rules: str = "2 2d Mango box") -> int:
    """The owner creates a lottery in their group 1 (added first); its id."""
    answer = await harness.say(OWNER, f"/lottery 1 {rules}")
    found = re.search(r"Lottery L(\d+) created", answer.text)
    assert found, answer.text
    await harness.settle()
    return int(found.group(1))


async def enter(harness, user, lottery_id: int):
    return await harness.tap(user, LotteryCB(action="enter", id=lottery_id), GROUP)


def ticket_of(answer) -> str:
    found = TICKET.search(answer.text)
    assert found, answer.text
    return found.group(0)


async def row(harness, lottery_id: int) -> Lottery:
    async with harness.db.read() as s:
        return await s.get(Lottery, lottery_id)


async def winners(harness, lottery_id: int) -> list[LotteryWinner]:
    async with harness.db.read() as s:
        rows = await s.scalars(
            select(LotteryWinner)
            .where(LotteryWinner.lottery_id == lottery_id)
            .order_by(LotteryWinner.seq)
        )
        return list(rows)


async def tick(harness, at) -> TickResult:
    result = TickResult()
    await run_lotteries(harness.app, at, result)
    await harness.settle()
    return result


def group_texts(harness) -> list[str]:
    return harness.api.texts(GROUP.id)


# ---------------------------------------------------------------- the whole conversation


async def test_a_lottery_from_announcement_to_claims_and_a_checked_redraw(harness) -> None:
    start = utcnow().replace(microsecond=0)
    harness.clock.set(start)
    await add_group(harness)
    lottery_id = await lottery_in(harness, "2 2d claim 24 Mango box <3")

    # the announcement: the prize (escaped), the rules, the commitment, an Enter button
    [post] = [m for m in harness.api.sent(GROUP.id) if "Lottery L" in m.text]
    stored = await row(harness, lottery_id)
    assert "Prize: Mango box &lt;3" in post.text and "2 winners" in post.text
    assert f"<code>{stored.commitment}</code>" in post.text
    assert stored.commitment == lottery_draw.commitment_of(stored.secret)
    assert stored.secret not in post.text
    assert harness.callbacks(post) == [LotteryCB(action="enter", id=lottery_id).pack()]
    assert "Who may enter: every member" in post.text

    # members enter once each; tapping again shows the same ticket
    tickets = {}
    for user in (ALICE, BOB, CAROL, DAVE):
        answer = await enter(harness, user, lottery_id)
        assert answer.show_alert and answer.text.startswith("You're in!"), answer.text
        tickets[user.id] = ticket_of(answer)
    again = await enter(harness, ALICE, lottery_id)
    assert "already entered" in again.text and ticket_of(again) == tickets[ALICE.id]
    assert len(set(tickets.values())) == 4
    refused = await enter(harness, ROBOT, lottery_id)
    assert refused.show_alert and "own account" in refused.text or "people" in refused.text
    # a tap from another chat (forged) finds no lottery
    other = await harness.tap(BOB, LotteryCB(action="enter", id=lottery_id))
    assert "does not exist" in other.text
    # Dave hides from leaderboards: he is never named in the group
    await harness.send(DAVE, "/hideme", GROUP)
    assert (await row(harness, lottery_id)).entries == 4

    # the secret is never shown before the draw
    for text in [*group_texts(harness), *(a.text for a in harness.api.answers())]:
        assert stored.secret not in (text or "")

    # nothing is due before the deadline
    assert (await tick(harness, start + timedelta(days=1))).lotteries_closed == 0
    deadline = stored.closes_at
    harness.clock.set(deadline)
    late = await enter(harness, person(605, "Eve"), lottery_id)
    assert "closed" in late.text
    closed = await tick(harness, deadline)
    assert (closed.lotteries_closed, closed.lotteries_drawn) == (1, 0)
    stored = await row(harness, lottery_id)
    listed = sorted(tickets.values())
    assert stored.status == "closed"
    assert stored.entries_hash == lottery_draw.entries_hash(listed)
    closing = [t for t in group_texts(harness) if "entries closed" in t]
    assert len(closing) == 1 and stored.entries_hash in closing[0]
    assert all(t in closing[0] for t in listed) and stored.secret not in closing[0]
    # the published list, as members copy it from the post
    posted = re.search(r"Tickets:\n<code>(.*)</code>", closing[0], re.S).group(1)
    assert posted.split("\n") == listed

    # the draw, DRAW_DELAY later: the secret revealed, the winners as the recipe says
    assert (await tick(harness, deadline + timedelta(minutes=1))).lotteries_drawn == 0
    drawn_at = deadline + lotteries.DRAW_DELAY
    assert (await tick(harness, drawn_at)).lotteries_drawn == 1
    expected = lottery_draw.draw(stored.secret, listed, 2)
    rows = await winners(harness, lottery_id)
    assert [w.ticket for w in rows] == expected
    holder = {t: uid for uid, t in tickets.items()}
    assert [w.user_id for w in rows] == [holder[t] for t in expected]
    [announce] = [t for t in group_texts(harness) if ": the draw</b>" in t]
    assert f"<code>{stored.secret}</code>" in announce
    names = {ALICE.id: "Alice", BOB.id: "Bob", CAROL.id: "Carol", DAVE.id: "Dave"}
    for w in rows:
        name = "a member" if w.user_id == DAVE.id else names[w.user_id]
        assert f"{w.seq}. {name} (ticket <code>{w.ticket}</code>)" in announce
    assert "Dave" not in announce
    assert "python -m bot verify-lottery" in announce

    # anyone re-checks the draw from the posts alone: the command as a subprocess
    commitment = HEX64.search(post.text).group(0)
    secret = re.search(r"Secret: <code>([0-9a-f]{64})</code>", announce).group(1)
    published_hash = re.search(r"list: <code>([0-9a-f]{64})</code>", closing[0]).group(1)
    entries = Path(harness.app.settings.data_dir) / "tickets.txt"
    entries.parent.mkdir(parents=True, exist_ok=True)
    entries.write_text(posted + "\n", "ascii")
    command = [sys.executable, "-m", "bot", "verify-lottery", "--commitment", commitment]
    command += ["--secret", secret, "--entries", str(entries), "--winners", "2", "--draws", "3"]
    command += ["--entries-hash", published_hash]
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    stdout = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "commitment: ok" in stdout and "(matches the published hash)" in stdout
    checked = re.findall(r"^\d+\. ([0-9a-f]{8}) \((winner|redraw)\)$", stdout, re.M)
    assert [t for t, role in checked if role == "winner"] == expected

    # winners are told in private, with a Claim button
    first, second = rows
    for w in rows:
        [note] = [m for m in harness.api.sent(w.user_id) if "You won the lottery" in m.text]
        assert w.ticket in note.text
        assert harness.callbacks(note) == [LotteryCB(action="claim", id=lottery_id).pack()]
    loser = next(uid for uid in tickets if uid not in {first.user_id, second.user_id})
    loser_user = next(u for u in (ALICE, BOB, CAROL, DAVE) if u.id == loser)
    assert not any("You won" in t for t in harness.api.texts(loser))
    nope = await harness.tap(loser_user, LotteryCB(action="claim", id=lottery_id))
    assert "did not win" in nope.text

    # the first winner claims; the owner is told who
    first_user = next(u for u in (ALICE, BOB, CAROL, DAVE) if u.id == first.user_id)
    claimed = await harness.tap(first_user, LotteryCB(action="claim", id=lottery_id))
    assert claimed.text.startswith("Claimed!")
    again = await harness.tap(first_user, LotteryCB(action="claim", id=lottery_id))
    assert "already claimed" in again.text
    await harness.settle()
    owner_notes = [t for t in harness.api.texts(OWNER.id) if "claimed the prize" in t]
    assert len(owner_notes) == 1 and names[first.user_id] in owner_notes[0]

    # the second does not claim in time: the next draw of the same inputs replaces them
    lapse = drawn_at + timedelta(hours=24)
    harness.clock.set(lapse)
    second_user = next(u for u in (ALICE, BOB, CAROL, DAVE) if u.id == second.user_id)
    over = await harness.tap(second_user, LotteryCB(action="claim", id=lottery_id))
    assert "over" in over.text
    result = await tick(harness, lapse)
    assert result.lottery_redraws == 1
    rows = await winners(harness, lottery_id)
    assert [w.status for w in rows] == ["claimed", "lapsed", "pending"]
    assert rows[2].ticket == lottery_draw.draw(stored.secret, listed, 3)[2] == checked[2][0]
    [redraw] = [t for t in group_texts(harness) if "redraw" in t]
    assert second.ticket in redraw and rows[2].ticket in redraw and "--draws 3" in redraw
    assert any("You won" in t for t in harness.api.texts(rows[2].user_id))
    # a replayed tick changes nothing
    assert (await tick(harness, lapse)).lottery_redraws == 0
    assert len(await winners(harness, lottery_id)) == 3

    # the owner's view names every winner and their status
    detail = await harness.say(OWNER, f"/lottery L{lottery_id}")
    assert "Status: drawn · 4 entries" in detail.text
    assert "claimed" in detail.text and "lapsed" in detail.text and "to claim" in detail.text
    listing = await harness.say(OWNER, "/lottery")
    assert f"L{lottery_id} · Mango box" in listing.text and "1. Fruit Lovers" in listing.text
    assert "does not exist" in (await harness.say(ALICE, f"/lottery L{lottery_id}")).text

    # the digest counts the lottery
    async with harness.db.read() as s:
        group = await s.scalar(select(Group))
        built = await digest.build(
            s, group, digest.Period(date(2000, 1, 1), date(2100, 1, 1)), lapse
        )
    assert (built.lotteries.entries, built.lotteries.drawn, built.lotteries.claimed) == (4, 1, 1)
    from views.digest_texts import group_text

    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        assert "🎁 Lotteries: 4 entries, 1 drawn, 1 prizes claimed, 0 open now" in group_text(built)


async def test_the_owners_refusals_change_nothing(harness) -> None:
    await add_group(harness)
    assert "Usage" in (await harness.say(OWNER, "/lottery")).text
    for rules, expected in {
        "1 0 2d x": "1 to 100 winners",
        "1 1 5m x": "not a deadline",
        "1 1 2d claim 500 x": "1 to 168 hours",
        "1 1 2d deal D99 x": "not a deal posted in that group",
        "1 1 2d": "Usage",
        "7 1 2d x": "1. Fruit Lovers",  # no such group number: the list
    }.items():
        answer = await harness.say(OWNER, f"/lottery {rules}")
        assert expected in answer.text, (rules, answer.text)
    # a member who manages no group gets the list of none
    assert "You manage no group" in (await harness.say(ALICE, "/lottery 1 1 2d x")).text
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Lottery)) == 0
        assert await s.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def test_who_may_enter_is_checked_at_entry(harness) -> None:
    now = utcnow()
    harness.clock.set(now)
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id])
    assert await publish_deal(harness, deal_id) == 1
    active = await lottery_in(harness, "1 2d active 3 Active prize")
    by_deal = await lottery_in(harness, f"1 2d deal D{deal_id} Deal prize")
    bought = await lottery_in(harness, "1 2d bought 30 Buyers prize")
    async with harness.db.transaction() as s:
        today = digest.local_today(now, "Asia/Shanghai")
        for back in (0, 3, 13):  # Alice: 3 active days within the last 14
            s.add(MemberActivityDay(group_id=group_id, day=today - timedelta(days=back),
                                    user_id=ALICE.id, messages=1))  # fmt: skip
        for back in (0, 20, 30):  # Bob: only one of them recent
            s.add(MemberActivityDay(group_id=group_id, day=today - timedelta(days=back),
                                    user_id=BOB.id, messages=1))  # fmt: skip
        s.add(User(id=CAROL.id, first_name="Carol"))
        await s.flush()
        for user_id, fulfilment, code in ((CAROL.id, "picked_up", "PC1"), (BOB.id, "ready", "PC2")):
            s.add(Order(deal_id=deal_id, user_id=user_id, group_id=group_id, quantity=1,
                        status="confirmed", pickup_code=code, fulfilment=fulfilment,
                        created_at=now, updated_at=now))  # fmt: skip
    assert (await enter(harness, ALICE, active)).text.startswith("You're in!")
    refused = await enter(harness, BOB, active)
    assert "active here on at least 3 of the last 14 days" in refused.text
    assert (await enter(harness, CAROL, by_deal)).text.startswith("You're in!")
    refused = await enter(harness, BOB, by_deal)  # ordered, not yet picked up
    assert f"order of D{deal_id}" in refused.text
    assert (await enter(harness, CAROL, bought)).text.startswith("You're in!")
    assert "last 30 days" in (await enter(harness, ALICE, bought)).text
    async with harness.db.read() as s:
        counted = dict(
            (await s.execute(select(LotteryEntry.lottery_id, func.count()).group_by(
                LotteryEntry.lottery_id))).all()
        )  # fmt: skip
    assert counted == {active: 1, by_deal: 1, bought: 1}
    await harness.settle()
    post = next(t for t in group_texts(harness) if f"L{by_deal}" in t)
    assert f"picked up or got delivered an order of D{deal_id}" in post


async def test_replayed_entries_and_ticks_change_nothing(harness) -> None:
    start = utcnow().replace(microsecond=0)
    harness.clock.set(start)
    await add_group(harness)
    lottery_id = await lottery_in(harness, "1 1h Tea")
    update = harness.updates.callback(
        ALICE, LotteryCB(action="enter", id=lottery_id).pack(), chat=GROUP
    )
    for _ in range(3):
        await harness.feed(update)
    stored = await row(harness, lottery_id)
    async with harness.db.read() as s:
        entries = await s.scalar(select(func.count()).select_from(LotteryEntry))
    assert (entries, stored.entries) == (1, 1)
    for _ in range(2):
        await tick(harness, stored.closes_at)
    for _ in range(2):
        await tick(harness, stored.closes_at + lotteries.DRAW_DELAY)
    assert sum("entries closed" in t for t in group_texts(harness)) == 1
    assert sum(": the draw</b>" in t for t in group_texts(harness)) == 1
    [w] = await winners(harness, lottery_id)
    assert w.user_id == ALICE.id
    assert sum("You won" in t for t in harness.api.texts(ALICE.id)) == 1
    # the only entry drawn: at its lapse nobody is left to replace it
    result = await tick(harness, w.claim_by)
    assert result.lottery_redraws == 1
    assert any("no ticket is left" in t for t in group_texts(harness))
    assert [x.status for x in await winners(harness, lottery_id)] == ["lapsed"]


async def test_forty_simultaneous_entries_each_count_once(harness) -> None:
    await add_group(harness)
    lottery_id = await lottery_in(harness, "3 2d Big box")
    members = [person(10_000 + n, f"M{n}") for n in range(40)]
    updates = [
        harness.updates.callback(m, LotteryCB(action="enter", id=lottery_id).pack(), chat=GROUP)
        for m in members
    ]
    # and one member tapping five times at once
    same = [
        harness.updates.callback(ALICE, LotteryCB(action="enter", id=lottery_id).pack(), chat=GROUP)
        for _ in range(5)
    ]
    before = len(harness.api.answers())
    await asyncio.gather(*(harness.feed(u) for u in [*updates, *same]))
    answers = [a.text for a in harness.api.answers()[before:]]
    assert len(answers) == 45
    assert sum(a.startswith("You're in!") for a in answers) == 41, answers
    async with harness.db.read() as s:
        rows = list(await s.scalars(select(LotteryEntry)))
    assert len(rows) == 41 and len({r.ticket for r in rows}) == 41
    assert len({r.user_id for r in rows}) == 41
    assert (await row(harness, lottery_id)).entries == 41
    theirs = {u.callback_query.id for u in same}
    alice = [
        TICKET.search(a.text).group(0)
        for a in harness.api.answers()[before:]
        if a.callback_query_id in theirs
    ]
    assert len(alice) == 5
    assert len(set(alice)) == 1  # every answer of Alice's taps names her one ticket


async def test_entries_at_the_closing_never_cross_it(harness) -> None:
    """Entries racing the heartbeat's closing: each is either in the published list or
    refused, never counted after the hash."""
    start = utcnow().replace(microsecond=0)
    harness.clock.set(start)
    await add_group(harness)
    lottery_id = await lottery_in(harness, "2 1h Race")
    stored = await row(harness, lottery_id)
    harness.clock.set(stored.closes_at - timedelta(seconds=1))
    members = [person(20_000 + n, f"R{n}") for n in range(15)]
    updates = [
        harness.updates.callback(m, LotteryCB(action="enter", id=lottery_id).pack(), chat=GROUP)
        for m in members
    ]

    async def close() -> None:
        await asyncio.sleep(0)
        await run_lotteries(harness.app, stored.closes_at, TickResult())

    # the closing is at closes_at; the entries' clock is a second before it
    await asyncio.gather(close(), *(harness.feed(u) for u in updates))
    await run_lotteries(harness.app, stored.closes_at, TickResult())
    stored = await row(harness, lottery_id)
    async with harness.db.read() as s:
        tickets = sorted(await s.scalars(select(LotteryEntry.ticket)))
    assert stored.status == "closed"
    assert stored.entries == len(tickets)
    assert stored.entries_hash == lottery_draw.entries_hash(tickets)


async def test_an_entry_is_in_mydata_and_forgetme_keeps_the_ticket_anonymous(harness) -> None:
    start = utcnow().replace(microsecond=0)
    harness.clock.set(start)
    await add_group(harness)
    lottery_id = await lottery_in(harness, "1 1h Tea")
    ticket = ticket_of(await enter(harness, BOB, lottery_id))
    async with harness.db.read() as s:
        mine = await privacy.export(s, BOB.id)
    assert [r["ticket"] for r in mine["tables"]["lottery_entries"]] == [ticket]
    async with harness.db.transaction() as s:
        await privacy.forget(s, BOB.id)
    async with harness.db.read() as s:
        [entry] = list(await s.scalars(select(LotteryEntry)))
    assert entry.ticket == ticket and entry.user_id != BOB.id  # the list stays checkable
    stored = await row(harness, lottery_id)
    await tick(harness, stored.closes_at)
    await tick(harness, stored.closes_at + lotteries.DRAW_DELAY)
    [drawn] = [t for t in group_texts(harness) if ": the draw</b>" in t]
    assert f"1. a member (ticket <code>{ticket}</code>)" in drawn


async def test_a_long_entry_list_is_posted_as_a_document(harness) -> None:
    start = utcnow().replace(microsecond=0)
    harness.clock.set(start)
    group_id = await add_group(harness)
    lottery_id = await lottery_in(harness, "5 1h Many")
    async with harness.db.transaction() as s:
        for n in range(200):
            s.add(LotteryEntry(lottery_id=lottery_id, user_id=30_000 + n,
                               ticket=f"{n:08x}", created_at=start))  # fmt: skip
    stored = await row(harness, lottery_id)
    await tick(harness, stored.closes_at)
    [sent] = [d for d in harness.api.of(SendDocument) if d.chat_id == GROUP.id]
    data = sent.document.data.decode("ascii")
    assert data == lottery_draw.entries_text([f"{n:08x}" for n in range(200)])
    stored = await row(harness, lottery_id)
    assert stored.entries_hash in sent.caption and stored.entries == 200
    assert group_id and len(sent.caption) <= 1024


async def test_a_winner_who_hid_from_leaderboards_is_announced_by_ticket_only(harness) -> None:
    start = utcnow().replace(microsecond=0)
    harness.clock.set(start)
    await add_group(harness)
    hidden = await lottery_in(harness, "1 1h Hidden")
    shown = await lottery_in(harness, "1 1h Shown")
    await harness.send(CAROL, "/hideme", GROUP)
    ticket = ticket_of(await enter(harness, CAROL, hidden))
    await enter(harness, BOB, shown)
    stored = await row(harness, hidden)
    await tick(harness, stored.closes_at)
    await tick(harness, stored.closes_at + lotteries.DRAW_DELAY)
    [hidden_post] = [t for t in group_texts(harness) if f"L{hidden}: the draw" in t]
    [shown_post] = [t for t in group_texts(harness) if f"L{shown}: the draw" in t]
    assert f"1. a member (ticket <code>{ticket}</code>)" in hidden_post
    assert "Carol" not in hidden_post
    assert "1. Bob (ticket" in shown_post
    # she is still told in private, by name of the prize, with her Claim button
    [note] = [m for m in harness.api.sent(CAROL.id) if "You won the lottery" in m.text]
    assert "Hidden" in note.text and ticket in note.text


async def test_a_replayed_creation_or_claim_changes_nothing(harness) -> None:
    start = utcnow().replace(microsecond=0)
    harness.clock.set(start)
    await add_group(harness)
    update = harness.updates.command(private(OWNER), OWNER, "/lottery 1 1 1h Tea")
    for _ in range(3):
        await harness.feed(update)
    await harness.settle()
    async with harness.db.read() as s:
        [lottery] = list(await s.scalars(select(Lottery)))
    assert sum(f"Lottery L{lottery.id}</b>" in t for t in group_texts(harness)) == 1
    await enter(harness, ALICE, lottery.id)
    await tick(harness, lottery.closes_at)
    await tick(harness, lottery.closes_at + lotteries.DRAW_DELAY)
    harness.clock.set(lottery.closes_at + lotteries.DRAW_DELAY + timedelta(hours=1))
    claim = harness.updates.callback(ALICE, LotteryCB(action="claim", id=lottery.id).pack())
    for _ in range(3):
        await harness.feed(claim)
    await harness.settle()
    [w] = await winners(harness, lottery.id)
    assert w.status == "claimed" and w.claimed_at == harness.clock.now()
    assert sum("claimed the prize" in t for t in harness.api.texts(OWNER.id)) == 1
