"""Polls (征集意见): the owner's /poll into one or more groups (sendPoll per group through the
outbox, its message and poll id recorded from Telegram's answer), votes from `poll_answer`
(changes, retractions, `voter_chat` answers, replays that change nothing, many at once),
anonymous polls counted from `poll` updates and stopPoll's answer, the heartbeat closing a
poll once with stopPoll and sending the owner the results with "Start a deal" buttons that
open /newdeal with the title filled in, /polls, /mydata and /forgetme, and the digest."""

from __future__ import annotations

import asyncio
import json
import string
from datetime import timedelta

import pytest
from aiogram import methods as m
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Chat, PollAnswer, Update
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from handlers.callbacks import ForgetCB, PollCB
from models import Group, OutboxMessage, Poll, PollPost, PollVote
from scheduler.jobs import TickResult, close_polls, tick
from services import digest, polls, privacy
from services.polls import BadPoll
from services.timezones import utcnow
from tests.builders import group, person, private
from tests.test_deal_post import GROUP, OTHER, OWNER, add_group
from views.digest_texts import group_text

ALICE = person(601, "Alice")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")
STRANGER = person(609, "Sam")
CHANNEL = Chat(id=-1001999000111, type="channel", title="Fruit News")


# ---------------------------------------------------------------- the parsers


def test_parse_command_reads_every_part() -> None:
    spec = polls.parse_command("1,2 3d Which fruit next week? | Mangoes | Lychees | Durian")
    assert (spec.groups, spec.when, spec.until, spec.anonymous, spec.multiple) == (
        [1, 2],
        "3d",
        False,
        False,
        False,
    )
    assert spec.question == "Which fruit next week?"
    assert spec.options == ["Mangoes", "Lychees", "Durian"]
    spec = polls.parse_command("2 until tomorrow 20:00 multi anon Days?\nSat\nSun")
    assert (spec.groups, spec.when, spec.until, spec.anonymous, spec.multiple) == (
        [2],
        "tomorrow 20:00",
        True,
        True,
        True,
    )
    assert (spec.question, spec.options) == ("Days?", ["Sat", "Sun"])
    assert polls.parse_command("1+3 90m 哪天？ ｜ 周六 ｜ 周日").groups == [1, 3]
    refusals = {
        "": "usage",
        "1": "usage",
        "x 2h Q? | a | b": "groups",
        "1 2y Q? | a | b": "time",
        "1 91d Q? | a | b": "time",
        "1 0m Q? | a | b": "time",
        "1 2h Q? | a": "options",
        "1 2h | a | b": "question",
        "1 2h Q? | a | A": "duplicate",
        "1 2h Q? | " + "x" * 101 + " | b": "option",
        "1 2h " + "q" * 301 + " | a | b": "question",
        "1 2h Q? | " + " | ".join(str(n) for n in range(11)): "options",
        "1 until": "time",
    }
    for args, what in refusals.items():
        with pytest.raises(BadPoll) as caught:
            polls.parse_command(args)
        assert caught.value.what == what, (args, caught.value.what)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parse_command_never_raises_but_a_refusal(text) -> None:
    try:
        spec = polls.parse_command(text)
    except BadPoll:
        return
    assert 1 <= len(spec.groups) <= polls.MAX_GROUPS
    assert all(1 <= n <= 999 for n in spec.groups)
    assert 0 < len(spec.question) <= polls.MAX_QUESTION
    assert polls.MIN_OPTIONS <= len(spec.options) <= polls.MAX_OPTIONS
    assert all(0 < len(o) <= polls.MAX_OPTION for o in spec.options)
    assert len({o.casefold() for o in spec.options}) == len(spec.options)


@settings(max_examples=300, deadline=None)
@given(
    days=st.integers(min_value=0, max_value=120),
    hours=st.integers(min_value=0, max_value=60),
    minutes=st.integers(min_value=0, max_value=200),
)
def test_durations_parse_exactly_within_their_bounds(days, hours, minutes) -> None:
    word = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
    word += f"{minutes}m" if minutes or not word else ""
    total = days * 1440 + hours * 60 + minutes
    if polls.MIN_MINUTES <= total <= polls.MAX_DAYS * 1440:
        assert polls.parse_duration(word) == timedelta(minutes=total)
    else:
        with pytest.raises(BadPoll):
            polls.parse_duration(word)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=1200), min_size=1, max_size=25))
def test_group_lists_parse_exactly_within_their_bounds(numbers) -> None:
    word = ",".join(str(n) for n in numbers)
    if all(1 <= n <= 999 for n in numbers) and len(numbers) <= polls.MAX_GROUPS:
        assert polls.parse_groups(word) == sorted(set(numbers))
    else:
        with pytest.raises(BadPoll):
            polls.parse_groups(word)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable + "天小时分钟，、｜", max_size=12))
def test_group_and_duration_words_never_raise_but_a_refusal(word) -> None:
    for parse in (polls.parse_groups, polls.parse_duration):
        try:
            parse(word)
        except BadPoll:
            pass


# ---------------------------------------------------------------- helpers


def answer_update(harness, poll_id: str, options: list[int], user=None, chat=None) -> Update:
    return Update(
        update_id=harness.updates.next_id(),
        poll_answer=PollAnswer(
            poll_id=poll_id,
            option_ids=options,
            option_persistent_ids=[str(i) for i in options],
            user=user,
            voter_chat=chat,
        ),
    )


async def vote(harness, poll_id: str, options: list[int], user=None, chat=None) -> Update:
    update = answer_update(harness, poll_id, options, user, chat)
    await harness.feed(update)
    return update


async def two_groups(harness) -> tuple[int, int]:
    return await add_group(harness, GROUP), await add_group(harness, OTHER)


async def create(harness, args: str) -> Poll:
    answer = await harness.say(OWNER, f"/poll {args}")
    assert "is on its way" in answer.text, answer.text
    await harness.settle()
    async with harness.db.read() as s:
        return await s.scalar(select(Poll).order_by(Poll.id.desc()).limit(1))


async def posts_of(harness, poll_id: int) -> list[PollPost]:
    async with harness.db.read() as s:
        return list(
            await s.scalars(
                select(PollPost).where(PollPost.poll_id == poll_id).order_by(PollPost.id)
            )
        )


async def votes_of(harness) -> dict[tuple[int, int], str]:
    async with harness.db.read() as s:
        return {(v.post_id, v.voter_id): v.option_ids for v in await s.scalars(select(PollVote))}


async def close_at(harness, poll: Poll) -> TickResult:
    result = await tick(harness.app, poll.closes_at + timedelta(seconds=1), digests=False)
    await harness.settle()
    return result


# ---------------------------------------------------------------- creating


async def test_owner_creates_a_poll_sent_into_each_group(harness) -> None:
    g1, g2 = await two_groups(harness)
    answer = await harness.say(OWNER, "/poll")
    assert "1. <b>Fruit Lovers</b>" in answer.text and "2. <b>Veggie Club</b>" in answer.text
    now = utcnow().replace(microsecond=0)
    harness.clock.set(now)
    poll = await create(harness, "1,2 3d Which <fruit> next? | Mangoes & co | Lychees | Durian")
    assert (poll.question, poll.anonymous, poll.multiple, poll.status) == (
        "Which <fruit> next?",
        False,
        False,
        "open",
    )
    assert poll.closes_at == now + timedelta(days=3)
    sent = harness.api.of(m.SendPoll)
    assert sorted(s.chat_id for s in sent) == sorted([GROUP.id, OTHER.id])
    for request in sent:  # the owner's text as typed, not read as HTML
        assert request.question == "Which <fruit> next?" and request.question_parse_mode is None
        assert [o.text for o in request.options] == ["Mangoes & co", "Lychees", "Durian"]
        assert request.is_anonymous is False and request.allows_multiple_answers is False
    posts = await posts_of(harness, poll.id)
    assert sorted(p.group_id for p in posts) == sorted([g1, g2])
    by_chat = {chat: poll_id for poll_id, (chat, _mid, _s) in harness.api.polls.items()}
    assert {p.tg_poll_id for p in posts} == set(by_chat.values())
    assert all(p.message_id is not None for p in posts)
    # Settling again sends nothing twice; the /poll update delivered again creates nothing.
    await harness.settle()
    assert len(harness.api.of(m.SendPoll)) == 2
    update = harness.updates.command(private(OWNER), OWNER, "/poll 1 2h Again? | a | b")
    await harness.feed(update)
    await harness.feed(update)
    await harness.settle()
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Poll)) == 2
        assert await s.scalar(select(func.count()).select_from(PollPost)) == 3
    assert len(harness.api.of(m.SendPoll)) == 3


async def test_bad_polls_are_refused_and_change_nothing(harness) -> None:
    await two_groups(harness)
    refusals = {
        "3 2h Q? | a | b": "not a list of your groups",
        "1 2x Q? | a | b": "not a closing time ahead",
        "1 2h Q? | a": "2 to 10 options",
        "1 2h Q? | a | a": "Two options are the same",
        "1 until 2020-01-01 Q? | a | b": "not a closing time ahead",
        "1 2h Q? | " + "<b>" * 40 + " | b": "at most 100 characters",
    }
    for args, expected in refusals.items():
        answer = await harness.say(OWNER, f"/poll {args}")
        assert expected in answer.text, (args, answer.text)
    # A member who runs no group gets the help and the empty list, and creates nothing.
    answer = await harness.say(STRANGER, "/poll 1 2h Q? | a | b")
    assert "You do not run any group yet." in answer.text
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Poll)) == 0
        assert await s.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def test_a_demoted_owner_cannot_poll_the_group(harness) -> None:
    from models import GroupAdmin

    group_id = await add_group(harness, GROUP)
    other = person(777, "Olga")
    harness.api.set_admins(GROUP.id, other)
    async with harness.db.transaction() as s:
        await s.execute(
            GroupAdmin.__table__.delete().where(GroupAdmin.group_id == group_id)
        )  # the stored list says nothing any more; Telegram says Olga
        s.add(GroupAdmin(group_id=group_id, user_id=other.id, status="creator"))
        await s.execute(
            Group.__table__.update()
            .where(Group.id == group_id)
            .values(admins_refreshed_at=utcnow() - timedelta(days=30))
        )
    answer = await harness.say(OWNER, "/poll 1 2h Q? | a | b")
    assert "is on its way" not in answer.text
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Poll)) == 0


# ---------------------------------------------------------------- votes


async def test_votes_changes_retractions_voter_chats_and_replays(harness) -> None:
    await two_groups(harness)
    poll = await create(harness, "1,2 2h Which? | A | B | C")
    posts = await posts_of(harness, poll.id)
    first, second = posts[0].tg_poll_id, posts[1].tg_poll_id
    answer = await vote(harness, first, [0], ALICE)
    await vote(harness, first, [1], BOB)
    await vote(harness, second, [1], CAROL)
    await vote(harness, second, [2], chat=CHANNEL)  # an anonymous admin / channel
    assert await votes_of(harness) == {
        (posts[0].id, ALICE.id): "0",
        (posts[0].id, BOB.id): "1",
        (posts[1].id, CAROL.id): "1",
        (posts[1].id, CHANNEL.id): "2",
    }
    # A replay (the same update again) changes nothing; a changed vote replaces the row.
    before = await votes_of(harness)
    await harness.feed(answer)
    assert await votes_of(harness) == before
    await vote(harness, first, [2], ALICE)
    assert (await votes_of(harness))[posts[0].id, ALICE.id] == "2"
    # The same answer delivered as a new update writes the same row.
    await vote(harness, first, [2], ALICE)
    assert (await votes_of(harness))[posts[0].id, ALICE.id] == "2"
    # A retraction (no options) removes the vote; replaying it changes nothing more.
    retraction = await vote(harness, first, [], BOB)
    await harness.feed(retraction)
    votes = await votes_of(harness)
    assert (posts[0].id, BOB.id) not in votes and len(votes) == 3
    # Options the poll does not have, several in a one-answer poll, an unknown poll: nothing.
    await vote(harness, first, [7], BOB)
    await vote(harness, first, [0, 1], BOB)
    await vote(harness, "not-our-poll", [0], BOB)
    assert await votes_of(harness) == votes
    async with harness.db.read() as s:
        found = await polls.results(s, poll.id)
    assert (found.counts, found.voters, found.top) == ([0, 1, 2], 3, [2])


async def test_a_multiple_answer_poll_keeps_each_voters_options(harness) -> None:
    await add_group(harness, GROUP)
    poll = await create(harness, "1 2h multi Days? | Sat | Sun | Mon")
    [post] = await posts_of(harness, poll.id)
    assert harness.api.of(m.SendPoll)[0].allows_multiple_answers is True
    await vote(harness, post.tg_poll_id, [2, 0, 0], ALICE)
    await vote(harness, post.tg_poll_id, [0], BOB)
    assert await votes_of(harness) == {(post.id, ALICE.id): "0,2", (post.id, BOB.id): "0"}
    async with harness.db.read() as s:
        found = await polls.results(s, poll.id)
    assert (found.counts, found.voters, found.top) == ([2, 0, 1], 2, [0])


async def test_many_simultaneous_answers_and_their_replays_count_once(harness) -> None:
    await add_group(harness, GROUP)
    poll = await create(harness, "1 2h Which? | A | B")
    [post] = await posts_of(harness, poll.id)
    voters = [person(20_000 + n, f"V{n}") for n in range(24)]
    updates = [answer_update(harness, post.tg_poll_id, [n % 2], v) for n, v in enumerate(voters)]
    # Each voter also changes their mind at the same moment (a separate update): either
    # order may win, but each voter holds exactly one row.
    changes = [answer_update(harness, post.tg_poll_id, [1], v) for v in voters[:6]]
    await asyncio.gather(*(harness.feed(u) for u in [*updates, *updates, *changes]))
    votes = await votes_of(harness)
    assert len(votes) == 24
    assert {voter for _post, voter in votes} == {v.id for v in voters}
    for n, v in enumerate(voters[6:], start=6):
        assert votes[post.id, v.id] == str(n % 2)
    assert all(votes[post.id, v.id] in {"0", "1"} for v in voters[:6])
    async with harness.db.read() as s:
        found = await polls.results(s, poll.id)
    assert sum(found.counts) == 24 and found.voters == 24


# ---------------------------------------------------------------- closing


async def test_the_heartbeat_closes_once_and_the_owner_starts_a_deal_from_the_winner(
    harness,
) -> None:
    await two_groups(harness)
    poll = await create(harness, "1,2 45d Which fruit? | Mangoes | Lychees")
    posts = await posts_of(harness, poll.id)
    await vote(harness, posts[0].tg_poll_id, [1], ALICE)
    await vote(harness, posts[1].tg_poll_id, [1], BOB)
    await vote(harness, posts[1].tg_poll_id, [0], CAROL)
    # Not due yet: nothing happens.
    early = await tick(harness.app, poll.closes_at - timedelta(minutes=1), digests=False)
    assert early.polls_closed == 0 and harness.api.of(m.StopPoll) == []
    result = await close_at(harness, poll)
    assert result.polls_closed == 1
    stops = harness.api.of(m.StopPoll)
    assert sorted((s.chat_id, s.message_id) for s in stops) == sorted(
        (GROUP.id if p.group_id == posts[0].group_id else OTHER.id, p.message_id) for p in posts
    )
    again = await close_at(harness, poll)
    assert again.polls_closed == 0 and len(harness.api.of(m.StopPoll)) == 2
    async with harness.db.read() as s:
        closed = await s.get(Poll, poll.id)
    assert closed.status == "closed" and closed.closed_at is not None
    assert all(p.stopped_at is not None for p in await posts_of(harness, poll.id))
    [results] = [r for r in harness.api.sent(OWNER.id) if "has closed" in r.text]
    assert "Mangoes: <b>1</b> (33%)" in results.text
    assert "🏆 Lychees: <b>2</b> (67%)" in results.text and "3 voters" in results.text
    assert harness.buttons(results) == {
        "Start a deal: Lychees": PollCB(action="deal", id=poll.id, option=1).pack()
    }
    # Votes after the closing change nothing.
    await vote(harness, posts[0].tg_poll_id, [0], person(650, "Late"))
    assert len(await votes_of(harness)) == 3
    # Someone else's tap is refused; the owner's opens /newdeal with the title filled in.
    refused = await harness.tap(STRANGER, PollCB(action="deal", id=poll.id, option=1))
    assert "not an owner" in refused.text
    assert await harness.tap(OWNER, PollCB(action="deal", id=poll.id, option=1))
    storage = harness.app.dispatcher.storage
    key = StorageKey(bot_id=harness.app.bot.id, chat_id=OWNER.id, user_id=OWNER.id)
    assert (await storage.get_state(key)) == "DealWizard:groups"
    assert (await storage.get_data(key))["draft"]["title"] == "Lychees"
    assert "Deal title from poll P" in harness.last(OWNER).text
    assert "<b>Lychees</b>" in harness.last(OWNER).text
    # An option the poll does not have, or a poll that does not exist: refused.
    assert (
        "does not exist"
        in (await harness.tap(OWNER, PollCB(action="deal", id=poll.id, option=5))).text
    )
    assert "does not exist" in (await harness.tap(OWNER, PollCB(action="deal", id=999))).text


async def test_an_anonymous_poll_is_counted_from_telegrams_figures(harness) -> None:
    await add_group(harness, GROUP)
    poll = await create(harness, "1 10m anon Pickup day? | Sat | Sun | Mon")
    [request] = harness.api.of(m.SendPoll)
    assert request.is_anonymous is True
    [post] = await posts_of(harness, poll.id)
    harness.api.poll_counts[post.tg_poll_id] = [1, 4, 0]
    update = Update(
        update_id=harness.updates.next_id(), poll=harness.api.poll_state(post.tg_poll_id)
    )
    await harness.feed(update)
    [post] = await posts_of(harness, poll.id)
    assert (json.loads(post.counts), post.voters) == ([1, 4, 0], 5)
    # poll_answer never comes for an anonymous poll; one would record nothing.
    await vote(harness, post.tg_poll_id, [0], ALICE)
    assert await votes_of(harness) == {}
    # At closing stopPoll's answer carries the final counts.
    harness.api.poll_counts[post.tg_poll_id] = [2, 5, 1]
    await close_at(harness, poll)
    [post] = await posts_of(harness, poll.id)
    assert (json.loads(post.counts), post.voters) == ([2, 5, 1], 8)
    [results] = [r for r in harness.api.sent(OWNER.id) if "has closed" in r.text]
    assert "🏆 Sun: <b>5</b>" in results.text and "8 voters" in results.text
    assert list(harness.buttons(results)) == ["Start a deal: Sun"]


async def test_a_poll_that_could_not_be_sent_or_stopped_still_closes(harness) -> None:
    await two_groups(harness)
    harness.api.fail_next("forbidden", m.SendPoll, chat_id=OTHER.id)
    poll = await create(harness, "1,2 1h Which? | A | B")
    posts = await posts_of(harness, poll.id)
    assert [p.message_id is not None for p in posts] == [True, False]
    harness.api.fail_next("bad_request", m.StopPoll, message="Bad Request: message not found")
    await close_at(harness, poll)
    assert len(harness.api.of(m.StopPoll)) == 1  # only the poll that was sent
    assert all(p.stopped_at is not None for p in await posts_of(harness, poll.id))
    [results] = [r for r in harness.api.sent(OWNER.id) if "has closed" in r.text]
    assert "0 voters" in results.text and results.reply_markup is None


async def test_a_poll_closed_before_it_went_out_is_never_sent(harness) -> None:
    await add_group(harness, GROUP)
    answer = await harness.say(OWNER, "/poll 1 1m Quick? | yes | no")
    assert "is on its way" in answer.text
    async with harness.db.read() as s:
        poll = await s.scalar(select(Poll))
    await close_polls(harness.app, poll.closes_at + timedelta(seconds=1), TickResult())
    await harness.settle()
    assert harness.api.of(m.SendPoll) == [] and harness.api.of(m.StopPoll) == []
    assert any("has closed" in t for t in harness.api.texts(OWNER.id))


# ---------------------------------------------------------------- /polls, privacy, digest


async def test_polls_lists_the_owners_polls_with_their_votes(harness) -> None:
    await add_group(harness, GROUP)
    assert "not created any poll yet" in (await harness.say(OWNER, "/polls")).text
    first = await create(harness, "1 1h First? | A | B")
    await create(harness, "1 2h Second & last? | X | Y")
    [post] = await posts_of(harness, first.id)
    await vote(harness, post.tg_poll_id, [1], ALICE)
    text = (await harness.say(OWNER, "/polls")).text
    assert text.index("Second &amp; last?") < text.index("First?")
    assert "🏆 B: <b>1</b> (100%)" in text and "open until" in text
    assert "not created any poll yet" in (await harness.say(ALICE, "/polls")).text


async def test_votes_are_in_mydata_and_forgetme_removes_them(harness) -> None:
    await add_group(harness, GROUP)
    poll = await create(harness, "1 1h Which? | A | B")
    [post] = await posts_of(harness, poll.id)
    await vote(harness, post.tg_poll_id, [0], ALICE)
    await vote(harness, post.tg_poll_id, [1], BOB)
    await harness.send(ALICE, "/mydata")
    [document] = harness.api.of(m.SendDocument)
    tables = json.loads(document.document.data.decode("utf-8"))["tables"]
    assert [(v["voter_id"], v["option_ids"]) for v in tables["poll_votes"]] == [(ALICE.id, "0")]
    await harness.send(ALICE, "/forgetme")
    await harness.tap(ALICE, ForgetCB(action="confirm"))
    await harness.settle()
    assert await votes_of(harness) == {(post.id, BOB.id): "1"}


async def test_the_digest_shows_poll_figures(harness) -> None:
    group_id = await add_group(harness, GROUP)
    await add_group(harness, group(-1001000000999, "Quiet"), owner=person(888, "Q"))
    closed = await create(harness, "1 1h Which? | A | B")
    [post] = await posts_of(harness, closed.id)
    await vote(harness, post.tg_poll_id, [0], ALICE)
    await vote(harness, post.tg_poll_id, [1], BOB)
    await create(harness, "1 3d Next? | C | D")
    async with harness.db.transaction() as s:
        await polls.close(s, closed.id, utcnow())
    now = utcnow()
    async with harness.db.read() as s:
        g = await s.get(Group, group_id)
        day = digest.local_today(now, g.timezone)
        built = await digest.build(s, g, digest.Period(day, day), now)
        quiet = await s.scalar(select(Group).where(Group.chat_id == -1001000000999))
        empty = await digest.build(s, quiet, digest.Period(day, day), now)
    assert (built.polls.closed, built.polls.open, built.polls.voters) == (1, 1, 2)
    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        assert "📊 Polls: 1 closed, 1 open now, 2 voters" in group_text(built)
        assert "Polls:" not in group_text(empty)  # shown only when not zero


async def test_the_longest_polls_stay_within_telegrams_limits(harness) -> None:
    await add_group(harness, GROUP)
    question = "Q&<" * 100  # 300 characters, each escaped in HTML
    options = " | ".join(f"{n}" + "&" * 99 for n in range(10))
    for _ in range(polls.LIST_MAX):
        await create(harness, f"1 1h {question} | {options}")
    text = (await harness.say(OWNER, "/polls")).text
    assert text.endswith("…") and text.count("<b>P") < polls.LIST_MAX
    async with harness.db.read() as s:
        poll = await s.scalar(select(Poll).order_by(Poll.id).limit(1))
    [post] = await posts_of(harness, poll.id)
    await vote(harness, post.tg_poll_id, [3], ALICE)
    await close_at(harness, poll)  # they all close (the group's stopPolls keep its pace)
    closed = [r for r in harness.api.sent(OWNER.id) if "has closed" in r.text]
    [results] = [r for r in closed if f"Poll P{poll.id} has closed" in r.text]
    [label] = harness.buttons(results)
    assert label.startswith("Start a deal: 3&&&") and len(label) <= 64
    # (the harness fails the test if any text went beyond Telegram's limits)


async def test_a_forgotten_owner_is_never_sent_the_results(harness) -> None:
    await add_group(harness, GROUP)
    poll = await create(harness, "1 1h Which? | A | B")
    await harness.send(OWNER, "/forgetme")
    await harness.tap(OWNER, ForgetCB(action="confirm"))
    await harness.settle()
    async with harness.db.read() as s:
        assert privacy.is_pseudonym((await s.get(Poll, poll.id)).owner_id)
    await close_at(harness, poll)
    assert len(harness.api.of(m.StopPoll)) == 1  # the group's poll is still stopped
    async with harness.db.read() as s:
        kinds = list(await s.scalars(select(OutboxMessage.kind)))
    assert polls.RESULTS not in kinds


async def test_stops_settling_at_the_same_moment_promise_the_results_once(harness) -> None:
    """Each group poll's stopPoll settles in its own transaction, possibly at the same
    moment: whichever is last sees the others and promises the results, exactly once."""
    groups = [group(-1001000005000 - n, f"G{n}") for n in range(4)]
    for chat in groups:
        await add_group(harness, chat)
    numbers = ",".join(str(n) for n in range(1, len(groups) + 1))
    for _round in range(5):
        poll = await create(harness, f"{numbers} 1h Which? | A | B")
        async with harness.db.transaction() as s:
            assert await polls.close(s, poll.id, utcnow())
        posts = await posts_of(harness, poll.id)
        assert len(posts) == len(groups)

        async def stop(post_id: int) -> None:
            async with harness.db.transaction() as s:
                await polls.record_stopped(s, post_id, utcnow())

        await asyncio.gather(*(stop(p.id) for p in posts))
        async with harness.db.read() as s:
            promised = await s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.key == f"poll:{poll.id}:results")
            )
        assert promised == 1
