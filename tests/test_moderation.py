"""Protection from spam: every rule off by default and explained in /settings; a newcomer's
challenge passed, failed by a wrong tap and by the time running out (only the member's own
tap counts); links, invite links, @mentions and forwarded channel posts from newcomers
deleted (never from old members, administrators or the allow-list, never past 48 hours);
a flood muted exactly once, its messages concurrent and replayed, also by a second instance;
join messages deleted; /modlog with Undo; the bot's missing rights named; the digest's
figures. Through the real Dispatcher and the fake Bot API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from aiogram.methods import DeleteMessage, RestrictChatMember, SendMessage
from aiogram.types import Chat, Message, MessageEntity, MessageOriginChannel, Update
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from bot.factory import create_app
from bot.moderation import ModerationGate, link_kind
from handlers.callbacks import ChallengeCB, ModCB
from models import Challenge, Group, Membership, ModAction, ModSettings, OutboxMessage
from scheduler.jobs import TickResult, expire_challenges
from services import digest as digest_service
from services import moderation
from services.digest import Period
from services.timezones import to_local, utcnow
from tests.builders import Updates, person, private
from tests.conftest import Harness, SettableClock
from tests.fake_api import FakeTelegram
from tests.test_deal_post import GROUP, OWNER, add_group
from views import digest_texts

ALICE = person(601, "Alice")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")
DAVE = person(604, "Dave", username="dave_d")
CHANNEL = Chat(id=-1002000000001, type="channel", title="Spam Channel")


# ---------------------------------------------------------------- helpers


def message(harness, user, text=None, *, date: int | None = None, **fields) -> Update:
    """A group message from `user` with any fields (entities, forward_origin, photo…)."""
    msg = Message(
        message_id=harness.updates.next_id() * 10,
        date=date if date is not None else int(utcnow().timestamp()),
        chat=GROUP,
        from_user=user,
        text=text,
        **fields,
    )
    return Update(update_id=harness.updates.next_id(), message=msg)


def url(text: str, start: int, length: int, kind: str = "url", **extra) -> MessageEntity:
    return MessageEntity(type=kind, offset=start, length=length, **extra)


async def moderated(harness, *rules: str, bot_admin: bool = True) -> int:
    """GROUP with its owner, the bot an administrator (with every right) or a plain
    member, and `rules` turned on from the /settings card (links: 1 day; flood: 5)."""
    group_id = await add_group(harness)
    await harness.feed(
        harness.updates.my_chat_member(
            GROUP, OWNER, "member", "administrator" if bot_admin else "member"
        )
    )
    for rule in rules:
        answer = await harness.tap(OWNER, ModCB(action=rule, group_id=group_id))
        assert answer.text == "Saved.", answer.text
    return group_id


async def join(harness, user) -> None:
    await harness.feed(harness.updates.chat_member(GROUP, user, "left", "member"))


async def actions(harness) -> list[tuple[int, str, str]]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(ModAction).order_by(ModAction.id))
        return [(r.member_id, r.kind, r.action) for r in rows]


def restricts(harness, user_id: int) -> list[RestrictChatMember]:
    return [r for r in harness.api.of(RestrictChatMember) if r.user_id == user_id]


def deleted(harness) -> list[int]:
    return [d.message_id for d in harness.api.of(DeleteMessage)]


async def challenge_of(harness, user) -> Challenge:
    async with harness.db.read() as s:
        return await s.scalar(select(Challenge).where(Challenge.member_id == user.id))


def challenge_posts(harness) -> list[SendMessage]:
    return [m for m in harness.api.sent(GROUP.id) if "tap the" in (m.text or "")]


# ---------------------------------------------------------------- settings


async def test_every_rule_is_off_by_default_and_the_card_explains_and_changes_them(
    harness,
) -> None:
    group_id = await add_group(harness)
    card = await harness.say(OWNER, "/settings")
    await harness.tap(OWNER, card.reply_markup.inline_keyboard[0][0].callback_data)
    settings_card = harness.last(OWNER)
    assert "🛡 Protection from spam" in harness.buttons(settings_card)
    await harness.tap(OWNER, ModCB(action="open", group_id=group_id))
    text = harness.last(OWNER).text
    assert "Every rule is off until you turn it on" in text
    assert "Challenge for new members: off" in text
    assert "Links from newcomers: allowed" in text and "Flood limit: off" in text
    assert "Delete join messages: off" in text and "Ban users" not in text
    gate: ModerationGate = harness.app.dispatcher["moderation"]
    assert await gate.policy(GROUP.id) is None  # nothing on: the screen does nothing

    for rule in ("chal", "link", "flood", "joins"):
        await harness.tap(OWNER, ModCB(action=rule, group_id=group_id))
    text = harness.last(OWNER).text
    assert "Challenge for new members: on" in text
    assert "deleted during their first 1 day" in text
    assert "more than 5 messages in 10 seconds mutes for 10 minutes" in text
    # the bot's rights are not known (no my_chat_member seen): each rule's failure is named
    assert "<b>Ban users</b>" in text and "<b>Delete messages</b>" in text
    assert "new members are not restricted and floods are not muted" in text
    assert "links from newcomers and join messages stay" in text
    policy = await gate.policy(GROUP.id)  # the cache was dropped by the change
    assert policy is not None and policy.challenge and policy.link_days == 1
    assert policy.flood_count == 5 and policy.delete_joins and OWNER.id in policy.exempt

    await harness.tap(OWNER, ModCB(action="link", group_id=group_id))
    assert "first 3 days" in harness.last(OWNER).text
    stranger = await harness.tap(ALICE, ModCB(action="chal", group_id=group_id))
    assert stranger.show_alert and "Only the owner" in stranger.text
    async with harness.db.read() as s:
        row = await s.get(ModSettings, group_id)
        assert row.challenge and row.link_days == 3  # the stranger changed nothing


async def test_the_card_names_exactly_the_rights_the_bot_lacks(harness) -> None:
    group_id = await moderated(harness, "flood", bot_admin=False)
    await harness.tap(OWNER, ModCB(action="open", group_id=group_id))
    text = harness.last(OWNER).text
    assert "I may not ban users here" in text and "I may not delete messages" in text
    await harness.feed(harness.updates.my_chat_member(GROUP, OWNER, "member", "administrator"))
    await harness.tap(OWNER, ModCB(action="open", group_id=group_id))
    text = harness.last(OWNER).text
    assert "<b>Ban users</b>" in text  # what is needed is always said
    assert "I may not" not in text


# ---------------------------------------------------------------- challenges


async def test_a_challenge_is_passed_by_the_member_only_and_lets_them_write(harness) -> None:
    await moderated(harness, "chal")
    await join(harness, ALICE)
    await harness.settle()
    [muted] = restricts(harness, ALICE.id)
    assert muted.permissions.can_send_messages is False
    [post] = challenge_posts(harness)
    assert f"tg://user?id={ALICE.id}" in post.text and "within 5 minutes" in post.text
    buttons = harness.callbacks(post)
    assert len(buttons) == 6 and len(set(buttons)) == 6
    row = await challenge_of(harness, ALICE)
    options = json.loads(row.options)
    assert len({data.split(":")[1] for data in buttons}) == 1  # one token, opaque codes
    right = ChallengeCB(token=row.token, code=row.answer).pack()
    assert right in buttons and row.message_id is not None  # its id recorded once sent
    assert len({name for name, _ in options}) == 6

    other = await harness.tap(BOB, right, GROUP, message_id=row.message_id)
    assert other.show_alert and "someone else" in other.text
    passed = await harness.tap(ALICE, right, GROUP, message_id=row.message_id)
    assert passed.text == "Welcome! You can write now."
    again = await harness.tap(ALICE, right, GROUP, message_id=row.message_id)
    assert "over" in again.text
    await harness.settle()
    muted, opened = restricts(harness, ALICE.id)
    assert opened.permissions.can_send_messages is True  # the group's defaults (getChat)
    assert opened.permissions.can_send_photos is False
    assert deleted(harness) == [row.message_id]  # the challenge is removed
    assert await actions(harness) == [
        (ALICE.id, "challenge", "restrict"),
        (ALICE.id, "challenge", "pass"),
    ]
    # the member's join reported again (the service message) challenges nothing new
    await harness.feed(message(harness, ALICE, new_chat_members=[ALICE]))
    await harness.settle()
    assert len(challenge_posts(harness)) == 1 and len(restricts(harness, ALICE.id)) == 2


async def test_a_wrong_tap_or_the_time_running_out_fails_the_challenge(harness) -> None:
    await moderated(harness, "chal")
    await join(harness, CAROL)
    await join(harness, DAVE)
    await harness.settle()
    carol = await challenge_of(harness, CAROL)
    wrong = next(code for _name, code in json.loads(carol.options) if code != carol.answer)
    tap = ChallengeCB(token=carol.token, code=wrong)
    failed = await harness.tap(CAROL, tap, GROUP, message_id=carol.message_id)
    assert failed.show_alert and "You stay restricted" in failed.text
    right = await harness.tap(CAROL, ChallengeCB(token=carol.token, code=carol.answer), GROUP)
    assert "over" in right.text  # no second try

    dave = await challenge_of(harness, DAVE)
    result = TickResult()
    await expire_challenges(harness.app, utcnow() + timedelta(minutes=2), result)
    assert result.challenges_failed == 0  # not yet
    await expire_challenges(harness.app, utcnow() + timedelta(minutes=6), result)
    assert result.challenges_failed == 1
    await expire_challenges(harness.app, utcnow() + timedelta(minutes=7), result)
    assert result.challenges_failed == 1  # once
    late = await harness.tap(DAVE, ChallengeCB(token=dave.token, code=dave.answer), GROUP)
    assert "over" in late.text
    await harness.settle()
    assert len(restricts(harness, CAROL.id)) == 1 and len(restricts(harness, DAVE.id)) == 1
    assert sorted(deleted(harness)) == sorted([carol.message_id, dave.message_id])
    assert (await challenge_of(harness, DAVE)).status == "failed"
    assert sorted(await actions(harness)) == sorted(
        [
            (CAROL.id, "challenge", "restrict"),
            (DAVE.id, "challenge", "restrict"),
            (CAROL.id, "challenge", "fail"),
            (DAVE.id, "challenge", "fail"),
        ]
    )


async def test_join_messages_are_deleted_and_a_join_seen_twice_is_challenged_once(
    harness,
) -> None:
    await moderated(harness, "chal", "joins")
    joined = message(harness, BOB, new_chat_members=[BOB])
    await harness.feed(harness.updates.chat_member(GROUP, BOB, "left", "member"))
    await asyncio.gather(harness.feed(joined), harness.feed(joined))  # and a replay
    await harness.settle()
    assert len(challenge_posts(harness)) == 1 and len(restricts(harness, BOB.id)) == 1
    assert joined.message.message_id in deleted(harness)
    assert sorted(await actions(harness)) == sorted(
        [(BOB.id, "challenge", "restrict"), (BOB.id, "joins", "delete")]
    )


async def test_administrators_and_allowed_members_are_not_challenged(harness) -> None:
    await moderated(harness, "chal")
    await harness.feed(message(harness, OWNER, "/allow @dave_d"))  # unknown so far
    assert "I don't know that member" in harness.last(GROUP).text
    await harness.feed(harness.updates.message(private(DAVE), DAVE, "/start"))
    await harness.feed(message(harness, OWNER, "/allow @dave_d"))
    assert "Added to the allow-list" in harness.last(GROUP).text
    await harness.feed(message(harness, ALICE, "/allow 603"))
    assert "Only the owner" in harness.last(GROUP).text
    await join(harness, DAVE)
    await harness.settle()
    assert not challenge_posts(harness) and not restricts(harness, DAVE.id)


# ---------------------------------------------------------------- links


async def test_links_from_newcomers_are_deleted_and_logged_without_text(harness) -> None:
    group_id = await moderated(harness, "link")
    await join(harness, ALICE)
    await join(harness, OWNER)  # a newcomer too, but an administrator
    text = "cheap coins at https://spam.example now"
    spam = [
        message(harness, ALICE, text, entities=[url(text, 15, 20)]),
        message(harness, ALICE, "join t.me/+AbCdEf", entities=[url("", 5, 12)]),
        message(harness, ALICE, "ask @spamshop", entities=[url("", 4, 9, "mention")]),
        message(
            harness,
            ALICE,
            "click",
            entities=[url("", 0, 5, "text_link", url="https://x.example")],
        ),
        message(
            harness,
            ALICE,
            "great offer",
            forward_origin=MessageOriginChannel(
                type="channel", date=datetime.now(UTC), chat=CHANNEL, message_id=7
            ),
        ),
        message(harness, ALICE, "write me: telegram.me/spamshop"),  # no entity
    ]
    for update_ in spam:
        await harness.feed(update_)
    harmless = [
        message(harness, ALICE, "see you at 10"),
        message(harness, ALICE, "ask @tuan_test_bot", entities=[url("", 4, 14, "mention")]),
        message(
            harness,
            ALICE,
            text,
            entities=[url(text, 15, 20)],
            date=int((utcnow() - timedelta(hours=49)).timestamp()),  # past 48 h
        ),
    ]
    for update_ in harmless:
        await harness.feed(update_)
    for update_ in spam:  # replays
        await harness.feed(update_)
    innocent = message(harness, ALICE, "nice weather")
    await harness.feed(innocent)
    edited = Message(
        message_id=innocent.message.message_id,
        date=innocent.message.date,
        edit_date=int(innocent.message.date.timestamp()),
        chat=GROUP,
        from_user=ALICE,
        text=text,
        entities=[url(text, 15, 20)],
    )
    await harness.feed(Update(update_id=harness.updates.next_id(), edited_message=edited))
    spam.append(innocent)  # edited into a link later: deleted too
    await harness.settle()
    assert sorted(deleted(harness)) == [u.message.message_id for u in spam]
    kinds = [kind for _member, kind, _action in await actions(harness)]
    assert kinds == ["link", "invite", "mention", "link", "forward", "invite", "link"]
    async with harness.db.read() as s:
        stored = " ".join(
            str(v) for row in await s.scalars(select(ModAction)) for v in vars(row).values()
        )
        outbox_rows = " ".join(r.payload for r in await s.scalars(select(OutboxMessage)))
    for word in ("spam.example", "coins", "spamshop", "offer"):
        assert word not in stored and word not in outbox_rows  # no text is kept

    # an old member, an administrator and an allowed member post links freely
    await join(harness, BOB)
    async with harness.db.transaction() as s:
        await s.execute(
            update(Membership)
            .where(Membership.group_id == group_id, Membership.user_id == BOB.id)
            .values(joined_at=utcnow() - timedelta(days=2))
        )
    await join(harness, CAROL)
    reply = message(harness, CAROL, "hi")
    await harness.feed(message(harness, OWNER, "/allow", reply_to_message=reply.message))
    before = len(deleted(harness))
    for user in (BOB, OWNER, CAROL):
        await harness.feed(message(harness, user, text, entities=[url(text, 15, 20)]))
    await harness.settle()
    assert len(deleted(harness)) == before
    await harness.feed(message(harness, OWNER, "/unallow 603"))
    assert "Removed from the allow-list" in harness.last(GROUP).text
    await harness.feed(message(harness, CAROL, text, entities=[url(text, 15, 20)]))
    await harness.settle()
    assert len(deleted(harness)) == before + 1


async def test_a_command_with_a_link_from_an_old_member_reaches_its_handler(harness) -> None:
    await moderated(harness, "link")
    before = len(harness.api.sent(GROUP.id))
    entities = [MessageEntity(type="bot_command", offset=0, length=6), url("", 7, 17)]
    await harness.feed(message(harness, BOB, "/deals https://x.example", entities=entities))
    assert len(harness.api.sent(GROUP.id)) == before + 1  # /deals answered
    assert not deleted(harness) and not await actions(harness)


# ---------------------------------------------------------------- flood


async def test_a_flood_is_muted_exactly_once_concurrent_and_replayed(harness) -> None:
    await moderated(harness, "flood")
    now = int(utcnow().timestamp())
    flood = [message(harness, ALICE, f"buy {n}", date=now) for n in range(12)]
    calm = [message(harness, BOB, f"hello {n}", date=now + 3 * n) for n in range(6)]
    await asyncio.gather(*(harness.feed(u) for u in [*flood, *calm]))
    await asyncio.gather(*(harness.feed(u) for u in flood))  # replayed
    await harness.settle()
    assert len(restricts(harness, ALICE.id)) == 1 and not restricts(harness, BOB.id)
    [mute] = restricts(harness, ALICE.id)
    assert mute.permissions.can_send_messages is False
    assert mute.until_date is not None
    assert await actions(harness) == [(ALICE.id, "flood", "mute")]

    # a second instance (its own window in memory) sees the same flood again: no new mute
    other = create_app(harness.app.settings, session=FakeTelegram(), db=harness.db,
                       clock=SettableClock())  # fmt: skip
    try:
        second = Harness(other, FakeTelegram(), Updates())
        fresh = [message(harness, ALICE, f"again {n}", date=now + 1) for n in range(8)]
        await asyncio.gather(*(second.feed(u) for u in [*flood, *fresh]))
    finally:
        await other.close()
    async with harness.db.read() as s:
        mutes = await s.scalar(
            select(func.count()).select_from(ModAction).where(ModAction.action == "mute")
        )
    assert mutes == 1

    # administrators never count; after the mute has ended a new flood mutes again
    owner_flood = [message(harness, OWNER, f"news {n}", date=now) for n in range(10)]
    await asyncio.gather(*(harness.feed(u) for u in owner_flood))
    later = now + 11 * 60
    await asyncio.gather(
        *(harness.feed(message(harness, ALICE, f"x {n}", date=later)) for n in range(7))
    )
    await harness.settle()
    assert await actions(harness) == [(ALICE.id, "flood", "mute"), (ALICE.id, "flood", "mute")]
    assert not restricts(harness, OWNER.id)


# ---------------------------------------------------------------- /modlog


async def test_modlog_lists_actions_for_owners_and_undoes_a_mute_once(harness) -> None:
    group_id = await moderated(harness, "flood")
    now = int(utcnow().timestamp())
    for n in range(6):
        await harness.feed(message(harness, ALICE, f"buy {n}", date=now))
    log = await harness.say(OWNER, "/modlog")
    assert "Moderation log" in log.text and "Alice · flood: muted until" in log.text
    [undo] = harness.callbacks(log)
    refused = await harness.tap(BOB, undo)
    assert refused.show_alert and not (await actions(harness))[1:]
    done = await harness.tap(OWNER, undo)
    assert done.text == "Done: they can write again."
    twice = await harness.tap(OWNER, undo)
    assert twice.show_alert and "undone already" in twice.text
    await harness.settle()
    muted, opened = restricts(harness, ALICE.id)
    assert opened.permissions.can_send_messages is True
    assert await actions(harness) == [(ALICE.id, "flood", "mute"), (ALICE.id, "flood", "undo")]
    log = await harness.say(OWNER, "/modlog")
    assert "(undone)" in log.text and not harness.callbacks(log)
    assert "Only the owner" in (await harness.say(BOB, "/modlog")).text
    forged = await harness.tap(OWNER, ModCB(action="undo", group_id=group_id, action_id=999))
    assert forged.show_alert


# ---------------------------------------------------------------- the digest


async def test_the_digest_shows_moderation_figures_only_when_there_are_some(harness) -> None:
    await moderated(harness, "link", "flood")
    async with harness.db.read() as s:
        group = await s.scalar(select(Group).where(Group.chat_id == GROUP.id))
    today = to_local(utcnow(), "Asia/Shanghai").date()
    period = Period(today - timedelta(days=1), today + timedelta(days=1))

    async def text() -> str:
        async with harness.db.read() as s:
            d = await digest_service.build(s, group, period, utcnow())
        i18n = harness.app.i18n
        with i18n.context(), i18n.use_locale("en"):
            return digest_texts.group_text(d)

    assert "Spam protection" not in await text()
    await join(harness, ALICE)
    await harness.feed(message(harness, ALICE, "x https://a.example", entities=[url("", 2, 17)]))
    now = int(utcnow().timestamp())
    for n in range(6):
        await harness.feed(message(harness, ALICE, f"m {n}", date=now))
    assert "Spam protection: 1 messages deleted, 1 mutes, challenges 0 passed and 0 failed" in (
        await text()
    )


# ---------------------------------------------------------------- parsers (property tests)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_allow_arguments_parse_only_their_shapes(value) -> None:
    target = moderation.parse_allow(value)
    if target is None:
        return
    stripped = value.strip()
    if target.user_id is not None:
        assert stripped.isdigit() and 0 < target.user_id < 2**53
        assert int(stripped) == target.user_id
    else:
        assert stripped == "@" + target.username
        assert 4 <= len(target.username) <= 32


@settings(deadline=None)
@given(
    st.integers(min_value=1, max_value=2**53 - 1),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{3,31}", fullmatch=True),
)
def test_allow_arguments_round_trip(number, name) -> None:
    assert moderation.parse_allow(f" {number} ").user_id == number
    assert moderation.parse_allow(f"@{name}").username == name


ENTITY_TYPES = ["url", "text_link", "mention", "bold", "hashtag", "bot_command", "email"]


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=60),
    spans=st.lists(
        st.tuples(
            st.sampled_from(ENTITY_TYPES),
            st.integers(min_value=0, max_value=70),
            st.integers(min_value=0, max_value=70),
        ),
        max_size=5,
    ),
    caption=st.booleans(),
)
def test_the_screen_reads_any_entities_without_raising(text, spans, caption) -> None:
    entities = [
        MessageEntity(
            type=t, offset=o, length=n, url="https://x.example" if t == "text_link" else None
        )
        for t, o, n in spans
    ]
    fields = {"caption": text, "caption_entities": entities} if caption else {
        "text": text, "entities": entities}  # fmt: skip
    msg = Message(message_id=1, date=0, chat=GROUP, from_user=ALICE, **fields)
    kind = link_kind(msg, "tuan_test_bot")
    assert kind in {None, "link", "invite", "mention"}
    if not spans and kind is not None:
        assert kind == "invite" and any(
            h in text.lower() for h in ("t.me/", "telegram.me/", "telegram.dog/")
        )
    if any(t in {"url", "text_link"} for t, _o, _n in spans):
        assert kind in {"link", "invite"}


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=10),
    dates=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=40),
    replays=st.integers(min_value=0, max_value=3),
)
def test_the_flood_window_triggers_once_per_flood_whatever_the_order(limit, dates, replays) -> None:
    """Over the limit within the window (any arrival order, replays included): exactly one
    trigger while the mute lasts; never one without more than `limit` messages in it."""
    policy = moderation.Policy(1, -100, flood_count=limit, flood_seconds=10, mute_minutes=10)
    gate = ModerationGate(db=None)  # type: ignore[arg-type]  # the window needs no database
    stream = list(enumerate(dates)) + list(enumerate(dates))[: replays * 3]
    triggers = [gate.flooding(policy, 7, message_id, date) for message_id, date in stream]
    assert sum(triggers) <= 1  # every date is within the 10 minutes of a first mute
    if sum(triggers):
        assert len(set(dates)) and len(dates) > limit
    if len(dates) > limit and max(dates) - min(dates) < 10:
        assert sum(triggers) == 1  # all within one window: muted
