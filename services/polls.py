"""Polls (征集意见): an owner asks their groups a question, the bot sends it as a Telegram
poll into each group, records the votes and tells the owner the outcome.

Rules (README, "Polls"):
- An owner creates a poll in private chat for one or more of the groups they administer now
  (`/poll 1,2 3d [anon] [multi] Question? | option | option …`): a question of at most
  MAX_QUESTION characters, MIN_OPTIONS–MAX_OPTIONS different options of at most MAX_OPTION
  characters each, anonymous or not, one or several answers, and a closing time from
  MIN_MINUTES minutes to MAX_DAYS days ahead (a duration such as `2h`, `3d`, `1d12h`, or
  `until <local time>` in the first group's timezone). Fixed once sent.
- Each group gets its own Telegram poll: a sendPoll outbox row per group (SEND), whose
  settling records the message and Telegram's poll id (`record_sent`), so `poll_answer`
  and `poll` updates are mapped to it.
- Telegram's own `open_period` / `close_date` reach only 600 s ahead, so the bot always
  closes its polls itself, whatever their length: the heartbeat (`close_due`) closes a due
  poll once (a conditional UPDATE) and promises a stopPoll row per group poll (STOP); when
  every one is settled (`record_stopped`), the results go to the owner (RESULTS).
- A non-anonymous poll's votes are kept per (group poll, voter): the options a voter holds
  now. A `poll_answer` writes that row (an upsert: a replay writes the same row), an empty
  answer (a retraction) deletes it; an answer from an anonymous admin or a channel carries
  `voter_chat` instead of `user` and is recorded against that chat's id. Answers naming
  options the poll does not have, or several in a one-answer poll, change nothing.
- An anonymous poll has no votes to record: its figures are Telegram's counts, kept from
  `poll` updates and from stopPoll's answer (`record_counts`).
- Votes are personal data: /mydata exports them, /forgetme deletes them (services.privacy,
  from the column annotations of models.polls).

No aiogram here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Group, Poll, PollPost, PollVote
from models.upsert import upsert
from services import outbox, privacy, rights
from services.admins import AdminDirectory
from services.errors import DomainError, NotGroupAdmin
from services.parsing import MAX_INT, ParseError, clean_text, parse_int, parse_local_datetime

MAX_QUESTION = 300  # Telegram's limit of a poll's question
MAX_OPTION = 100  # Telegram's limit of an option (and the deal title's)
MIN_OPTIONS, MAX_OPTIONS = 2, 10
MIN_MINUTES = 1
MAX_DAYS = 90
MAX_GROUPS = 20  # groups named in one /poll
SEND, STOP, RESULTS = "poll_send", "poll_stop", "poll_results"
CLOSE_BATCH = 50
LIST_MAX = 15  # polls shown by /polls
TOP_DEALS = 3  # "Start a deal" buttons under the results, at most
ANON_WORDS = {"anon", "anonymous", "匿名"}
MULTI_WORDS = {"multi", "multiple", "多选"}
UNTIL_WORDS = {"until", "到", "截止"}
_SEPARATORS = re.compile(r"[|｜\n]")
_DURATION = re.compile(
    r"(?:(\d{1,3})(?:d|天))?(?:(\d{1,4})(?:h|小时|时))?(?:(\d{1,6})(?:m|min|分钟|分))?"
)
_CLOCK = re.compile(r"\d{1,2}[:：.]\d{2}")
_TOKEN = re.compile(r"\s*(\S+)")


class PollError(DomainError):
    pass


class PollNotFound(PollError):
    pass


class BadPoll(PollError):
    """The /poll command does not parse: `what` names the part ("usage", "groups",
    "time", "question", "options", "option", "duplicate"), `value` what was typed."""

    def __init__(self, what: str, value: str = "") -> None:
        super().__init__(what, value)
        self.what = what
        self.value = value[:40]


# ---------------------------------------------------------------- parsing


@dataclass
class PollSpec:
    groups: list[int]  # 1-based numbers of the owner's groups, as /poll lists them
    when: str  # a duration ("3d") or a local time ("until …": the words after it)
    until: bool
    anonymous: bool
    multiple: bool
    question: str
    options: list[str]


def parse_groups(word: str) -> list[int]:
    """`1`, `1,3`, `2+4`, `1、2` → sorted different numbers, each 1–999 (BadPoll "groups")."""
    parts = [p for p in re.split(r"[,，+、]", word) if p]
    if not parts or len(parts) > MAX_GROUPS:
        raise BadPoll("groups", word)
    try:
        numbers = {parse_int(p, minimum=1, maximum=999) for p in parts}
    except ParseError:
        raise BadPoll("groups", word) from None
    return sorted(numbers)


def parse_duration(word: str) -> timedelta:
    """`30m`, `2h`, `3d`, `1d12h`, `2小时` → a duration from MIN_MINUTES minutes to MAX_DAYS
    days (BadPoll "time")."""
    found = _DURATION.fullmatch(word.lower())
    if not word or found is None or not any(found.groups()):
        raise BadPoll("time", word)
    days, hours, minutes = (int(g or 0) for g in found.groups())
    total = days * 1440 + hours * 60 + minutes
    if not MIN_MINUTES <= total <= MAX_DAYS * 1440:
        raise BadPoll("time", word)
    return timedelta(minutes=total)


def _split_text(text: str) -> tuple[str, list[str]]:
    parts = [" ".join(clean_text(p, multiline=False).split()) for p in _SEPARATORS.split(text)]
    question, *options = parts
    if not question:
        raise BadPoll("question")
    if len(question) > MAX_QUESTION:
        raise BadPoll("question", question)
    options = [o for o in options if o]
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise BadPoll("options", str(len(options)))
    for option in options:
        if len(option) > MAX_OPTION:
            raise BadPoll("option", option)
    if len({o.casefold() for o in options}) != len(options):
        raise BadPoll("duplicate")
    return question, options


def parse_command(args: str | None) -> PollSpec:
    """The text after `/poll`: `<groups> <duration | until <time>> [anon] [multi] Question? |
    option | option …` (options may also be given one per line). BadPoll says what is
    wrong; nothing is looked up here (the time is read against a group in `closing_time`)."""
    rest = (args or "").strip()
    words: list[str] = []

    def peek() -> str:
        found = _TOKEN.match(rest)
        return found.group(1) if found else ""

    def take() -> str:
        nonlocal rest
        found = _TOKEN.match(rest)
        if found is None:
            return ""
        rest = rest[found.end() :]
        return found.group(1)

    if not rest:
        raise BadPoll("usage")
    groups = parse_groups(take())
    first = take()
    if not first:
        raise BadPoll("usage")
    until = first.lower() in UNTIL_WORDS
    if until:
        day = take()
        if not day:
            raise BadPoll("time")
        words.append(day)
        if not _CLOCK.fullmatch(day) and _CLOCK.fullmatch(peek()):
            words.append(take())
    else:
        parse_duration(first)  # checked now; the moment is taken when it is created
        words.append(first)
    anonymous = multiple = False
    while True:
        following = peek().lower()
        if following in ANON_WORDS and not anonymous:
            anonymous = True
        elif following in MULTI_WORDS and not multiple:
            multiple = True
        else:
            break
        take()
    question, options = _split_text(rest)
    return PollSpec(groups, " ".join(words), until, anonymous, multiple, question, options)


def closing_time(spec: PollSpec, timezone: str, now: datetime) -> datetime:
    """When the poll closes: a duration from `now` (MIN_MINUTES minutes to MAX_DAYS days), or
    a local time in `timezone` ahead of `now`, at most MAX_DAYS days (BadPoll "time")."""
    if spec.until:
        try:
            moment = parse_local_datetime(spec.when, timezone, now)
        except ParseError:
            raise BadPoll("time", spec.when) from None
    else:
        moment = now + parse_duration(spec.when)
    if moment <= now or moment > now + timedelta(days=MAX_DAYS):
        raise BadPoll("time", spec.when)
    return moment


# ---------------------------------------------------------------- creating


def options_of(poll: Poll) -> list[str]:
    return [str(o) for o in json.loads(poll.options)]


async def create(
    session: AsyncSession,
    admins: AdminDirectory | None,
    user_id: int,
    groups: list[Group],
    spec: PollSpec,
    now: datetime,
) -> tuple[Poll, list[Group]]:
    """A new poll for `groups` (the owner's numbered groups): each named group must be one
    they administer now. One sendPoll row per group, in this transaction."""
    if any(n > len(groups) for n in spec.groups):
        raise BadPoll("groups", ",".join(str(n) for n in spec.groups))
    chosen = [groups[n - 1] for n in spec.groups]
    current = set(await rights.current_groups(session, admins, user_id))
    for group in chosen:
        if group.id not in current:
            raise NotGroupAdmin(group.id)
    closes_at = closing_time(spec, chosen[0].timezone, now)
    poll = Poll(
        owner_id=user_id,
        question=spec.question,
        options=json.dumps(spec.options, ensure_ascii=False),
        anonymous=spec.anonymous,
        multiple=spec.multiple,
        status="open",
        closes_at=closes_at,
        created_at=now,
    )
    session.add(poll)
    await session.flush()
    for group in chosen:
        post = PollPost(poll_id=poll.id, group_id=group.id, counts="[]", voters=0)
        session.add(post)
        await session.flush()
        await outbox.promise(
            session,
            key=f"poll:{post.id}:send",
            chat_id=group.chat_id,
            kind=SEND,
            payload={"post_id": post.id},
            group_id=group.id,
            now=now,
        )
    return poll, chosen


# ---------------------------------------------------------------- Telegram's side


async def record_sent(
    session: AsyncSession, post_id: int, message_id: int, tg_poll_id: str, now: datetime
) -> None:
    """sendPoll went out: the group's poll is known by its message and poll id. A poll
    closed meanwhile is stopped at once."""
    post = await session.get(PollPost, post_id)
    if post is None:
        return
    poll = await _lock(session, post.poll_id)  # against a closing at the same moment
    post.message_id, post.tg_poll_id = message_id, tg_poll_id[:64]
    await session.flush()
    if poll is not None and poll.status != "open":
        post.stopped_at = None
        await _promise_stop(session, post, now)


async def _post_by_tg(session: AsyncSession, tg_poll_id: str) -> PollPost | None:
    if not tg_poll_id or len(tg_poll_id) > 64:
        return None
    return await session.scalar(select(PollPost).where(PollPost.tg_poll_id == tg_poll_id))


@dataclass(frozen=True)
class Answered:
    recorded: bool  # False: not one of the bot's polls, closed, or options it does not have
    retracted: bool = False


async def answer(
    session: AsyncSession, tg_poll_id: str, voter_id: int, option_ids: list[int], now: datetime
) -> Answered:
    """A `poll_answer`: the voter (a user, or the chat of an anonymous admin / channel) now
    holds `option_ids` (empty: they retracted their vote)."""
    post = await _post_by_tg(session, tg_poll_id)
    if post is None or post.stopped_at is not None:
        return Answered(False)
    poll = await session.get(Poll, post.poll_id)
    if poll is None or poll.anonymous:
        return Answered(False)
    count = len(options_of(poll))
    chosen = sorted(set(option_ids))
    if any(not 0 <= i < count for i in chosen) or (len(chosen) > 1 and not poll.multiple):
        return Answered(False)
    if not chosen:
        await session.execute(
            delete(PollVote).where(PollVote.post_id == post.id, PollVote.voter_id == voter_id)
        )
        return Answered(True, retracted=True)
    await upsert(
        session,
        PollVote.__table__,
        {
            "post_id": post.id,
            "voter_id": voter_id,
            "option_ids": ",".join(str(i) for i in chosen),
            "voted_at": now,
        },
        ["post_id", "voter_id"],
        ["option_ids", "voted_at"],
    )
    return Answered(True)


async def record_counts(
    session: AsyncSession, tg_poll_id: str, counts: list[int], voters: int
) -> bool:
    """Telegram's figures of one group's poll (a `poll` update, stopPoll's answer)."""
    post = await _post_by_tg(session, tg_poll_id)
    if post is None:
        return False
    values = [max(0, min(int(c), MAX_INT)) for c in counts[:MAX_OPTIONS]]
    post.counts = json.dumps(values)
    post.voters = max(0, min(int(voters), MAX_INT))
    await session.flush()
    return True


# ---------------------------------------------------------------- closing


async def any_due(session: AsyncSession, now: datetime) -> bool:
    found = await session.scalar(
        select(Poll.id).where(Poll.status == "open", Poll.closes_at <= now).limit(1)
    )
    return found is not None


async def _promise_stop(session: AsyncSession, post: PollPost, now: datetime) -> None:
    group = await session.get(Group, post.group_id)
    await outbox.promise(
        session,
        key=f"poll:{post.id}:stop",
        chat_id=group.chat_id if group is not None else 0,
        kind=STOP,
        payload={"post_id": post.id},
        group_id=post.group_id,
        now=now,
    )


async def close(session: AsyncSession, poll_id: int, now: datetime) -> bool:
    """Close the poll once (whoever comes first); stopPoll for each group poll that was
    sent. True if this call closed it."""
    result = await session.execute(
        update(Poll)
        .where(Poll.id == poll_id, Poll.status == "open")
        .values(status="closed", closed_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return False
    posts = list(
        await session.scalars(
            select(PollPost).where(PollPost.poll_id == poll_id).order_by(PollPost.id)
        )
    )
    for post in posts:
        if post.message_id is None:  # never sent (or not yet: its send sees it closed)
            post.stopped_at = now
        else:
            await _promise_stop(session, post, now)
    await session.flush()
    await _finish(session, poll_id, now)
    return True


async def close_due(session: AsyncSession, now: datetime, limit: int = CLOSE_BATCH) -> int:
    due = list(
        await session.scalars(
            select(Poll.id)
            .where(Poll.status == "open", Poll.closes_at <= now)
            .order_by(Poll.closes_at, Poll.id)
            .limit(limit)
        )
    )
    closed = 0
    for poll_id in due:
        closed += await close(session, poll_id, now)
    return closed


async def record_stopped(session: AsyncSession, post_id: int, now: datetime) -> None:
    """The group poll's stopPoll is settled (sent, or failed for good): once every group
    poll of the closed poll is, its results go to the owner."""
    post = await session.get(PollPost, post_id)
    if post is None:
        return
    # The poll's row first: the group polls' stops settle at the same moment, and each must
    # see the others' once they committed, or none would find itself the last (PostgreSQL's
    # read committed) and the results would never be promised.
    await _lock(session, post.poll_id)
    if post.stopped_at is None:
        post.stopped_at = now
        await session.flush()
    await _finish(session, post.poll_id, now)


async def _lock(session: AsyncSession, poll_id: int) -> Poll | None:
    return await session.scalar(
        select(Poll)
        .where(Poll.id == poll_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _finish(session: AsyncSession, poll_id: int, now: datetime) -> None:
    poll = await session.get(Poll, poll_id)
    if poll is None or poll.status != "closed":
        return
    waiting = await session.scalar(
        select(func.count())
        .select_from(PollPost)
        .where(PollPost.poll_id == poll_id, PollPost.stopped_at.is_(None))
    )
    if waiting or privacy.is_pseudonym(poll.owner_id):  # never sent to a forgotten owner
        return
    await outbox.promise(
        session,
        key=f"poll:{poll_id}:results",
        chat_id=poll.owner_id,
        kind=RESULTS,
        payload={"poll_id": poll_id},
        now=now,
    )


# ---------------------------------------------------------------- reads


async def get(session: AsyncSession, poll_id: int) -> Poll:
    poll = await session.get(Poll, poll_id) if 0 < poll_id <= MAX_INT else None
    if poll is None:
        raise PollNotFound(poll_id)
    return poll


async def post_of(session: AsyncSession, post_id: int) -> tuple[PollPost, Poll, Group] | None:
    post = await session.get(PollPost, post_id)
    if post is None:
        return None
    poll = await session.get(Poll, post.poll_id)
    group = await session.get(Group, post.group_id)
    if poll is None or group is None:
        return None
    return post, poll, group


@dataclass
class Results:
    poll: Poll
    options: list[str]
    counts: list[int]  # per option, across the groups
    voters: int
    groups: list[Group] = field(default_factory=list)

    @property
    def top(self) -> list[int]:
        """The options with the most votes (none when nobody voted), at most TOP_DEALS."""
        best = max(self.counts, default=0)
        if best <= 0:
            return []
        return [i for i, c in enumerate(self.counts) if c == best][:TOP_DEALS]


async def results_of(session: AsyncSession, polls: list[Poll]) -> list[Results]:
    """Each poll's figures: votes recorded (non-anonymous), Telegram's counts (anonymous)."""
    if not polls:
        return []
    ids = [p.id for p in polls]
    posts = list(
        await session.scalars(
            select(PollPost).where(PollPost.poll_id.in_(ids)).order_by(PollPost.id)
        )
    )
    group_ids = sorted({p.group_id for p in posts})
    groups = (
        {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(group_ids)))}
        if group_ids
        else {}
    )
    post_poll = {p.id: p.poll_id for p in posts}
    votes: dict[int, list[str]] = {}
    if posts:
        rows = await session.execute(
            select(PollVote.post_id, PollVote.option_ids).where(
                PollVote.post_id.in_([p.id for p in posts])
            )
        )
        for post_id, chosen in rows:
            votes.setdefault(post_poll[post_id], []).append(chosen)
    found = []
    for poll in polls:
        options = options_of(poll)
        counts = [0] * len(options)
        mine = [p for p in posts if p.poll_id == poll.id]
        if poll.anonymous:
            voters = sum(p.voters for p in mine)
            for post in mine:
                for i, c in enumerate(json.loads(post.counts or "[]")[: len(options)]):
                    counts[i] += int(c)
        else:
            held = votes.get(poll.id, [])
            voters = len(held)
            for chosen in held:
                for i in {int(x) for x in chosen.split(",") if x}:
                    if 0 <= i < len(options):
                        counts[i] += 1
        shown = [groups[p.group_id] for p in mine if p.group_id in groups]
        found.append(Results(poll, options, counts, voters, shown))
    return found


async def results(session: AsyncSession, poll_id: int) -> Results:
    [found] = await results_of(session, [await get(session, poll_id)])
    return found


async def of_owner(session: AsyncSession, user_id: int) -> list[Results]:
    polls = list(
        await session.scalars(
            select(Poll).where(Poll.owner_id == user_id).order_by(Poll.id.desc()).limit(LIST_MAX)
        )
    )
    return await results_of(session, polls)


async def may_manage(
    session: AsyncSession, admins: AdminDirectory | None, poll: Poll, user_id: int
) -> bool:
    """Whether `user_id` may act on the poll now (its creator while an administrator of one
    of its groups, else any current administrator of them: services.rights)."""
    group_ids = list(
        await session.scalars(select(PollPost.group_id).where(PollPost.poll_id == poll.id))
    )
    groups = list(await session.scalars(select(Group).where(Group.id.in_(group_ids))))
    return await rights.may_manage_in(session, admins, poll.owner_id, groups, user_id)


@dataclass
class Counts:
    """A group's polls for its digest: open now, closed in the period, and the voters of
    those polls (votes held, or Telegram's count for an anonymous poll)."""

    open: int = 0
    closed: int = 0
    voters: int = 0

    @property
    def any(self) -> bool:
        return bool(self.open or self.closed)


async def counts(
    session: AsyncSession, *, group_id: int, closed_from: datetime, closed_to: datetime
) -> Counts:
    rows = list(
        await session.execute(
            select(PollPost.id, Poll.status, Poll.anonymous, PollPost.voters)
            .join(Poll, Poll.id == PollPost.poll_id)
            .where(
                PollPost.group_id == group_id,
                (Poll.status == "open")
                | ((Poll.closed_at >= closed_from) & (Poll.closed_at < closed_to)),
            )
        )
    )
    if not rows:
        return Counts()
    held = dict(
        (
            await session.execute(
                select(PollVote.post_id, func.count())
                .where(PollVote.post_id.in_([r[0] for r in rows]))
                .group_by(PollVote.post_id)
            )
        ).all()
    )
    found = Counts()
    for post_id, status, anonymous, voters in rows:
        if status == "open":
            found.open += 1
        else:
            found.closed += 1
        found.voters += voters if anonymous else held.get(post_id, 0)
    return found
