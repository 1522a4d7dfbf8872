"""The content calendar: owners' scheduled posts, their next runs in each group's timezone,
validation of what owners type, and claims so a run happens once across instances.

No aiogram here. Rules:
- A one-off post runs at one UTC moment (typed in the first chosen group's timezone) in every
  target group. A recurring post (daily / weekly / cron) runs at its wall-clock time in EACH
  group's own timezone; the next run is computed from the zone's rules, so a 09:00 post
  stays at 09:00 local across DST changes (a time skipped by the change runs at the first
  moment after it; a repeated time runs at its first occurrence).
- A run is claimed with a conditional UPDATE (`claim`): only one caller gets a due target;
  then the post is sent; then `finish` moves it to its next FUTURE occurrence (missed runs are
  never sent in bulk: after downtime a recurring post runs once and then at its next time).
  A claim expires after CLAIM_LEASE, so a crash between claim and finish retries the run.
- Cron expressions have five fields; anything firing more often than every MIN_INTERVAL, or
  never, is refused.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, DealReminderSent, Group, GroupAdmin, ScheduledPost, ScheduledTarget
from models.upsert import insert_ignore
from services import rights
from services.admins import AdminDirectory
from services.errors import DomainError
from services.parsing import REMINDER_MAX_MINUTES, ParseError, clean_text, reminder_list, tg_len

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MIN_INTERVAL = timedelta(minutes=5)
CLAIM_LEASE = timedelta(minutes=5)
RETRY_DELAY = timedelta(minutes=1)
MAX_ATTEMPTS = 3
KINDS = ("once", "daily", "weekly", "cron")
INSTANCE = f"i-{uuid.uuid4().hex[:12]}"  # this process, for claims


class PostNotFound(DomainError):
    pass


# ---------------------------------------------------------------- validation


def check_text(text: str, *, photo: bool) -> str:
    """The post's text, cleaned (services.parsing.clean_text), within Telegram's limits
    (4096; a photo's caption 1024)."""
    text = clean_text(text)
    if not text and not photo:
        raise ParseError("post_empty")
    limit = CAPTION_LIMIT if photo else TEXT_LIMIT
    if tg_len(text) > limit:
        raise ParseError(
            "caption_too_long" if photo else "post_too_long", max=limit, length=tg_len(text)
        )
    return text


def parse_clock(text: str) -> str:
    """'9:00', '09:00', '21.30' → 'HH:MM'; '25:61' is refused."""
    m = re.fullmatch(r"\s*(\d{1,2})[:：.](\d{2})\s*", text or "")
    if not m:
        raise ParseError("clock_format")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        raise ParseError("clock_invalid")
    return f"{hour:02d}:{minute:02d}"


_CRON_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


def _cron_day(token: str) -> int:
    token = token.strip().lower()
    if token in _CRON_DAYS:
        return _CRON_DAYS[token]
    if token.isascii() and token.isdigit() and int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"bad day of week {token!r}")


def _cron_weekdays(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday, 1 = Monday; names; ranges, lists,
    steps) as APScheduler's numbers (0 = Monday), which `CronTrigger.from_crontab` does not
    translate: given as is, `1-5` would mean Tuesday to Saturday."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _sep, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError("bad step")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            first, last = _cron_day(a), _cron_day(b)
            if b.strip() == "7":
                last = 7
            if last < first:
                raise ValueError("bad range")
        else:
            first = last = _cron_day(span)
            if step_text:
                last = 6  # "1/2": from Monday on, every other day
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(str((d + 6) % 7) for d in sorted(days, key=lambda d: (d + 6) % 7))


def _trigger(expr: str, timezone: str) -> CronTrigger:
    minute, hour, day, month, weekday = expr.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_cron_weekdays(weekday),
        timezone=ZoneInfo(timezone),
    )


def check_cron(text: str, timezone: str, now: datetime) -> str:
    """A five-field cron expression that fires, and at most once every MIN_INTERVAL."""
    expr = " ".join((text or "").split())
    fields = expr.split(" ") if expr else []
    if len(fields) == 6:
        raise ParseError("cron_seconds")
    if len(fields) != 5 or len(expr) > 120:
        raise ParseError("cron_format")
    try:
        trigger = _trigger(expr, timezone)
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError("cron_format") from exc
    fires: list[datetime] = []
    moment = now
    for _ in range(100):  # covers a full hour of minute values
        fire = trigger.get_next_fire_time(None, moment)
        if fire is None:
            break
        fires.append(fire)
        moment = fire + timedelta(seconds=1)
    if not fires:
        raise ParseError("cron_never")
    gaps = [b - a for a, b in zip(fires, fires[1:], strict=False)]
    if gaps and min(gaps) < MIN_INTERVAL:
        raise ParseError("cron_too_often", minutes=int(MIN_INTERVAL.total_seconds() // 60))
    return expr


def check_run_at(run_at: datetime | None, now: datetime) -> datetime:
    """A one-off post's moment is in the future."""
    if run_at is None or run_at <= now:
        raise ParseError("time_past")
    return run_at


def check_groups(group_ids: list[int]) -> list[int]:
    """At least one target group."""
    if not group_ids:
        raise ParseError("groups_empty")
    return group_ids


def check_weekdays(days: list[int]) -> str:
    chosen = sorted({int(d) for d in days if 0 <= int(d) <= 6})
    if not chosen:
        raise ParseError("weekdays_empty")
    return ",".join(str(d) for d in chosen)


# ---------------------------------------------------------------- next runs


def _at_local(day: date, clock: str, zone: ZoneInfo) -> datetime:
    hour, minute = (int(x) for x in clock.split(":"))
    # fold=0: a repeated time runs at its first occurrence; a skipped one maps past the gap.
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def next_run(post: ScheduledPost, timezone: str, after: datetime) -> datetime | None:
    """The first run strictly after `after` (UTC) in `timezone`; None when there is none."""
    after = after.astimezone(UTC)
    if post.kind == "once":
        return post.run_at if post.run_at is not None and post.run_at > after else None
    zone = ZoneInfo(timezone)
    if post.kind == "cron":
        fire = _trigger(post.cron or "", timezone).get_next_fire_time(
            None, after + timedelta(seconds=1)
        )
        return fire.astimezone(UTC) if fire is not None else None
    days = (
        {int(d) for d in (post.weekdays or "").split(",") if d}
        if post.kind == "weekly"
        else set(range(7))
    )
    local_day = after.astimezone(zone).date()
    for offset in range(0, 15):
        day = local_day + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        candidate = _at_local(day, post.at_time or "00:00", zone)
        if candidate > after:
            return candidate
    return None  # pragma: no cover - a weekday always comes within 15 days


def first_run(post: ScheduledPost, timezone: str, now: datetime) -> datetime | None:
    if post.kind == "once":
        return post.run_at
    return next_run(post, timezone, now)


# ---------------------------------------------------------------- the owner's posts


@dataclass
class PostSpec:
    text: str
    kind: str
    group_ids: list[int]
    photo_file_id: str | None = None
    deal_id: int | None = None
    run_at: datetime | None = None
    at_time: str | None = None
    weekdays: str | None = None
    cron: str | None = None


def _post_from(spec: PostSpec, owner_id: int) -> ScheduledPost:
    return ScheduledPost(
        owner_id=owner_id,
        text=spec.text,
        photo_file_id=spec.photo_file_id,
        deal_id=spec.deal_id,
        kind=spec.kind,
        run_at=spec.run_at,
        at_time=spec.at_time,
        weekdays=spec.weekdays,
        cron=spec.cron,
        paused=False,
    )


def validate(spec: PostSpec, timezone: str, now: datetime) -> None:
    """Everything a stored post must satisfy (the wizard checked each piece already)."""
    if spec.kind not in KINDS:
        raise ParseError("kind_unknown")
    check_groups(spec.group_ids)
    spec.text = check_text(spec.text, photo=spec.photo_file_id is not None)
    if spec.kind == "once":
        check_run_at(spec.run_at, now)
    elif spec.kind in ("daily", "weekly"):
        parse_clock(spec.at_time or "")
        if spec.kind == "weekly":
            check_weekdays([int(d) for d in (spec.weekdays or "").split(",") if d])
    else:
        check_cron(spec.cron or "", timezone, now)


async def create(
    session: AsyncSession,
    owner_id: int,
    spec: PostSpec,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> ScheduledPost:
    if spec.deal_id is not None:  # the deal's button: only to a deal the person manages now
        await owner_deal(session, spec.deal_id, owner_id, admins=admins)
    groups = {
        g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(spec.group_ids)))
    }
    ordered = [groups[i] for i in spec.group_ids if i in groups]
    if not ordered:
        raise ParseError("groups_empty")
    validate(spec, ordered[0].timezone, now)
    post = _post_from(spec, owner_id)
    session.add(post)
    await session.flush()
    for group in ordered:
        session.add(
            ScheduledTarget(
                post_id=post.id,
                group_id=group.id,
                next_run_at=first_run(post, group.timezone, now),
                attempts=0,
            )
        )
    await session.flush()
    return post


def preview_runs(
    spec: PostSpec, groups: list[Group], now: datetime
) -> list[tuple[Group, datetime]]:
    post = _post_from(spec, 0)
    runs = []
    for group in groups:
        moment = first_run(post, group.timezone, now)
        if moment is not None:
            runs.append((group, moment))
    return runs


@dataclass
class Listed:
    post: ScheduledPost
    groups: list[Group] = field(default_factory=list)
    next_run: tuple[Group, datetime] | None = None


async def owned(
    session: AsyncSession,
    owner_id: int,
    limit: int = 20,
    *,
    admins: AdminDirectory | None = None,
) -> list[Listed]:
    """The posts the person manages now (services.rights, as for deals: their own in groups
    they still administer, and orphaned posts of groups they administer), newest first."""
    group_ids = await rights.current_groups(session, admins, owner_id)
    if not group_ids:
        return []
    creator_still_admin = exists().where(
        ScheduledTarget.post_id == ScheduledPost.id,
        GroupAdmin.group_id == ScheduledTarget.group_id,
        GroupAdmin.user_id == ScheduledPost.owner_id,
    )
    in_my_groups = exists().where(
        ScheduledTarget.post_id == ScheduledPost.id, ScheduledTarget.group_id.in_(group_ids)
    )
    candidates = list(
        await session.scalars(
            select(ScheduledPost)
            .where(in_my_groups, or_(ScheduledPost.owner_id == owner_id, ~creator_still_admin))
            .order_by(ScheduledPost.id.desc())
            .limit(limit)
        )
    )
    posts = [p for p in candidates if await _manages(session, admins, p, owner_id)]
    if not posts:
        return []
    rows = await session.execute(
        select(ScheduledTarget, Group)
        .join(Group, Group.id == ScheduledTarget.group_id)
        .where(ScheduledTarget.post_id.in_([p.id for p in posts]))
        .order_by(ScheduledTarget.id)
    )
    listed = {p.id: Listed(p) for p in posts}
    for target, group in rows:
        item = listed[target.post_id]
        item.groups.append(group)
        if target.next_run_at is not None and (
            item.next_run is None or target.next_run_at < item.next_run[1]
        ):
            item.next_run = (group, target.next_run_at)
    return list(listed.values())


async def _manages(
    session: AsyncSession, admins: AdminDirectory | None, post: ScheduledPost, user_id: int
) -> bool:
    groups = list(
        await session.scalars(
            select(Group)
            .join(ScheduledTarget, ScheduledTarget.group_id == Group.id)
            .where(ScheduledTarget.post_id == post.id)
            .order_by(Group.id)
        )
    )
    return await rights.may_manage_in(session, admins, post.owner_id, groups, user_id)


async def get_owned(
    session: AsyncSession, post_id: int, owner_id: int, *, admins: AdminDirectory | None = None
) -> ScheduledPost:
    """The post, if the person manages it now (services.rights); else PostNotFound."""
    post = await session.get(ScheduledPost, post_id)
    if post is None or not await _manages(session, admins, post, owner_id):
        raise PostNotFound(post_id)
    return post


async def set_paused(
    session: AsyncSession,
    post_id: int,
    owner_id: int,
    paused: bool,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> ScheduledPost:
    """Pause, or resume: a resumed recurring post runs next at its next future time (the
    runs it missed while paused are not sent)."""
    post = await get_owned(session, post_id, owner_id, admins=admins)
    post.paused = paused
    post.updated_at = now
    if not paused and post.kind != "once":
        rows = await session.execute(
            select(ScheduledTarget, Group)
            .join(Group, Group.id == ScheduledTarget.group_id)
            .where(ScheduledTarget.post_id == post_id)
        )
        for target, group in rows:
            if target.next_run_at is None or target.next_run_at <= now:
                target.next_run_at = next_run(post, group.timezone, now)
    await session.flush()
    return post


async def edit_text(
    session: AsyncSession,
    post_id: int,
    owner_id: int,
    text: str,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> ScheduledPost:
    post = await get_owned(session, post_id, owner_id, admins=admins)
    post.text = check_text(text, photo=post.photo_file_id is not None)
    post.updated_at = now
    await session.flush()
    return post


async def _targets(session: AsyncSession, post_id: int) -> list[tuple[ScheduledTarget, Group]]:
    """The post's targets with their groups, first chosen first, locked against a claim
    running at the same time (SQLite: the write transaction is serialised anyway)."""
    rows = await session.execute(
        select(ScheduledTarget, Group)
        .join(Group, Group.id == ScheduledTarget.group_id)
        .where(ScheduledTarget.post_id == post_id)
        .order_by(ScheduledTarget.id)
        .with_for_update(of=ScheduledTarget)
        .execution_options(populate_existing=True)
    )
    return [(t, g) for t, g in rows]


def _claimed_elsewhere(target: ScheduledTarget, now: datetime) -> bool:
    return (
        target.claimed_by is not None
        and target.claimed_until is not None
        and target.claimed_until >= now
    )


async def edit_schedule(
    session: AsyncSession,
    post_id: int,
    owner_id: int,
    now: datetime,
    *,
    kind: str,
    run_at: datetime | None = None,
    at_time: str | None = None,
    weekdays: str | None = None,
    cron: str | None = None,
    admins: AdminDirectory | None = None,
) -> ScheduledPost:
    """A new schedule (same rules as at creation; a one-off time is an absolute moment), then
    each target's next run recomputed in its group's timezone. A run claimed right now by an
    instance is left to finish: its claim is kept, and `finish` moves it on from the new
    schedule. ParseError: nothing changed."""
    post = await get_owned(session, post_id, owner_id, admins=admins)
    targets = await _targets(session, post_id)
    timezone = targets[0][1].timezone if targets else "UTC"
    spec = PostSpec(
        text=post.text,
        kind=kind,
        group_ids=[g.id for _t, g in targets] or [0],
        photo_file_id=post.photo_file_id,
        run_at=run_at if kind == "once" else None,
        at_time=at_time if kind in ("daily", "weekly") else None,
        weekdays=weekdays if kind == "weekly" else None,
        cron=cron if kind == "cron" else None,
    )
    validate(spec, timezone, now)
    if kind == "cron":
        spec.cron = check_cron(spec.cron or "", timezone, now)
    elif kind in ("daily", "weekly"):
        spec.at_time = parse_clock(spec.at_time or "")
        if kind == "weekly":
            spec.weekdays = check_weekdays([int(d) for d in (spec.weekdays or "").split(",") if d])
    post.kind, post.run_at, post.at_time = spec.kind, spec.run_at, spec.at_time
    post.weekdays, post.cron = spec.weekdays, spec.cron
    post.updated_at = now
    for target, group in targets:
        if not group.is_active:
            continue  # the group refused the bot (stop_group): it stays stopped
        target.next_run_at = first_run(post, group.timezone, now)
        if not _claimed_elsewhere(target, now):
            target.attempts = 0  # a retry pending for the old schedule is over
    await session.flush()
    return post


async def edit_groups(
    session: AsyncSession,
    post_id: int,
    owner_id: int,
    group_ids: list[int],
    allowed: set[int],
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> ScheduledPost:
    """New target groups: only groups in `allowed` (those the owner administers), at least
    one. Kept groups keep their next run; a new group gets its next FUTURE run in its own
    timezone (a one-off post that already ran is not sent to it); a removed group's row goes
    (a run being sent there right now still completes). ParseError: nothing changed."""
    post = await get_owned(session, post_id, owner_id, admins=admins)
    wanted = list(dict.fromkeys(int(g) for g in group_ids))
    if not wanted:
        raise ParseError("groups_empty")
    if any(g not in allowed for g in wanted):
        raise ParseError("groups_not_yours")
    groups = {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(wanted)))}
    if any(g not in groups for g in wanted):
        raise ParseError("groups_not_yours")
    targets = await _targets(session, post_id)
    have = {t.group_id for t, _g in targets}
    removed = [t.id for t, _g in targets if t.group_id not in wanted]
    for group_id in wanted:
        if group_id in have:
            continue
        group = groups[group_id]
        session.add(
            ScheduledTarget(
                post_id=post.id,
                group_id=group.id,
                next_run_at=next_run(post, group.timezone, now),
                attempts=0,
            )
        )
    await session.flush()  # new rows first: SQLite may reuse the highest id once deleted
    if removed:
        await session.execute(delete(ScheduledTarget).where(ScheduledTarget.id.in_(removed)))
    post.updated_at = now
    await session.flush()
    return post


async def target_runs(session: AsyncSession, post_id: int) -> list[tuple[Group, datetime | None]]:
    """The post's groups (first chosen first) with their next run (None: none)."""
    rows = await session.execute(
        select(Group, ScheduledTarget.next_run_at)
        .join(ScheduledTarget, ScheduledTarget.group_id == Group.id)
        .where(ScheduledTarget.post_id == post_id)
        .order_by(ScheduledTarget.id)
    )
    return [(g, at) for g, at in rows]


async def remove(
    session: AsyncSession, post_id: int, owner_id: int, *, admins: AdminDirectory | None = None
) -> None:
    await get_owned(session, post_id, owner_id, admins=admins)
    await session.execute(delete(ScheduledTarget).where(ScheduledTarget.post_id == post_id))
    await session.execute(delete(ScheduledPost).where(ScheduledPost.id == post_id))


async def owner_deal(
    session: AsyncSession, deal_id: int, owner_id: int, *, admins: AdminDirectory | None = None
) -> Deal:
    """A deal the person manages now (services.rights), for a post's button; else ParseError
    deal_unknown."""
    deal = await session.get(Deal, deal_id)
    if deal is None or not await rights.may_manage(session, admins, deal, owner_id):
        raise ParseError("deal_unknown")
    return deal


# ---------------------------------------------------------------- runs (scheduler side)


async def due(session: AsyncSession, now: datetime, limit: int = 100) -> list[int]:
    """Targets due now and not claimed by anyone (ids)."""
    rows = await session.scalars(
        select(ScheduledTarget.id)
        .join(ScheduledPost, ScheduledPost.id == ScheduledTarget.post_id)
        .where(
            ScheduledTarget.next_run_at.is_not(None),
            ScheduledTarget.next_run_at <= now,
            ScheduledPost.paused.is_(False),
            or_(ScheduledTarget.claimed_until.is_(None), ScheduledTarget.claimed_until < now),
        )
        .order_by(ScheduledTarget.next_run_at)
        .limit(limit)
    )
    return list(rows)


async def claim(
    session: AsyncSession, target_id: int, now: datetime, owner: str = INSTANCE
) -> bool:
    """Take a due target for this instance; False if someone else has it or it is not due."""
    paused = select(ScheduledPost.paused).where(ScheduledPost.id == ScheduledTarget.post_id)
    result = await session.execute(
        update(ScheduledTarget)
        .where(
            ScheduledTarget.id == target_id,
            ScheduledTarget.next_run_at.is_not(None),
            ScheduledTarget.next_run_at <= now,
            or_(ScheduledTarget.claimed_until.is_(None), ScheduledTarget.claimed_until < now),
            paused.scalar_subquery().is_(False),
        )
        .values(claimed_by=owner, claimed_until=now + CLAIM_LEASE)
        .execution_options(synchronize_session=False)
    )
    return (result.rowcount or 0) > 0


async def claimed(
    session: AsyncSession, target_id: int
) -> tuple[ScheduledTarget, ScheduledPost, Group]:
    row = (
        await session.execute(
            select(ScheduledTarget, ScheduledPost, Group)
            .join(ScheduledPost, ScheduledPost.id == ScheduledTarget.post_id)
            .join(Group, Group.id == ScheduledTarget.group_id)
            .where(ScheduledTarget.id == target_id)
        )
    ).one()
    return row[0], row[1], row[2]


async def finish(
    session: AsyncSession,
    target_id: int,
    now: datetime,
    *,
    error: str | None = None,
    retry: bool = False,
    owner: str = INSTANCE,
) -> datetime | None:
    """After sending (or failing to): move the target to its next future run and release the
    claim. `retry`: a transient failure, tried again after RETRY_DELAY (MAX_ATTEMPTS in all).
    Returns the next run (None: the post is done in this group, or the owner removed the
    group or the post while the run was being sent)."""
    row = (
        await session.execute(
            select(ScheduledTarget, ScheduledPost, Group)
            .join(ScheduledPost, ScheduledPost.id == ScheduledTarget.post_id)
            .join(Group, Group.id == ScheduledTarget.group_id)
            .where(ScheduledTarget.id == target_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        return None
    target, post, group = row
    if target.claimed_by != owner:
        return target.next_run_at
    if retry and target.attempts + 1 < MAX_ATTEMPTS:
        target.attempts += 1
        target.last_error = (error or "")[:200]
        target.claimed_by = None
        target.claimed_until = now + RETRY_DELAY  # not claimable before then
        await session.flush()
        return target.next_run_at
    # From the post as it is now: the owner may have changed its schedule during the run. A
    # one-off run is done, unless an edit moved this target to a future time meanwhile.
    if post.kind == "once":
        moved = target.next_run_at is not None and target.next_run_at > now
        target.next_run_at = target.next_run_at if moved else None
    else:
        target.next_run_at = next_run(post, group.timezone, now)
    target.last_run_at = now
    target.last_error = (error or "")[:200] or None
    target.attempts = 0
    target.claimed_by = None
    target.claimed_until = None
    await session.flush()
    return target.next_run_at


async def stop_group(session: AsyncSession, group_id: int) -> None:
    """The group refused the bot (403): its scheduled posts stop."""
    await session.execute(
        update(ScheduledTarget)
        .where(ScheduledTarget.group_id == group_id)
        .values(next_run_at=None, claimed_by=None, claimed_until=None)
    )


async def upcoming(session: AsyncSession, limit: int = 10) -> list[tuple[ScheduledTarget, Group]]:
    """The next scheduled runs (for an operator view)."""
    rows = await session.execute(
        select(ScheduledTarget, Group)
        .join(Group, Group.id == ScheduledTarget.group_id)
        .join(ScheduledPost, ScheduledPost.id == ScheduledTarget.post_id)
        .where(ScheduledTarget.next_run_at.is_not(None), ScheduledPost.paused.is_(False))
        .order_by(ScheduledTarget.next_run_at)
        .limit(limit)
    )
    return [(t, g) for t, g in rows]


# ---------------------------------------------------------------- reminders before closing

REMINDER_STALE = timedelta(minutes=5)  # later than this after its moment: skipped, not sent
REMINDER_MIN_LEFT = timedelta(minutes=2)  # closes sooner than this: a reminder is pointless
REMINDER_HORIZON = timedelta(minutes=REMINDER_MAX_MINUTES)  # the longest a deal may ask for
# Kinds recorded before reminders were per deal: the same moments as m120 and m15.
LEGACY_KINDS = {"2h": "m120", "15m": "m15"}


def reminder_kind(minutes: int) -> str:
    """The kind recorded in deal_reminders_sent for a reminder `minutes` before closing."""
    return f"m{minutes}"


def deal_reminders(deal: Deal) -> dict[str, timedelta]:
    """The deal's reminders: kind → how long before closing (Deal.reminders; NULL: 2 h and
    15 min; "": none)."""
    return {reminder_kind(m): timedelta(minutes=m) for m in reminder_list(deal.reminders)}


@dataclass(frozen=True)
class ReminderDue:
    deal_id: int
    kind: str
    moment: datetime  # when it should have gone out
    stale: bool


async def reminders_due(session: AsyncSession, now: datetime) -> list[ReminderDue]:
    """Reminders whose moment came and that were not taken yet, from each deal's own list.

    Stale ones are listed with stale=True (the caller records and logs them, never sends
    them): their moment passed more than REMINDER_STALE ago, or came before the deal opened,
    or the deal closes within REMINDER_MIN_LEFT, or a later reminder of the deal is due too
    or was already sent (after downtime, or after the owner added a longer reminder, only the
    reminder that still matters goes out; the time left never goes up between reminders).
    Taken kinds are never listed again, whatever the owner changes later."""

    deals = list(
        await session.scalars(
            select(Deal).where(
                Deal.status == "open",
                Deal.closes_at > now,
                Deal.closes_at <= now + REMINDER_HORIZON,
                or_(Deal.reminders.is_(None), Deal.reminders != ""),
            )
        )
    )
    if not deals:
        return []
    taken: dict[int, dict[str, tuple[str, datetime]]] = {}
    for deal_id, kind, outcome, sent_at in await session.execute(
        select(
            DealReminderSent.deal_id,
            DealReminderSent.kind,
            DealReminderSent.outcome,
            DealReminderSent.sent_at,
        ).where(DealReminderSent.deal_id.in_([d.id for d in deals]))
    ):
        taken.setdefault(deal_id, {})[LEGACY_KINDS.get(kind, kind)] = (outcome, sent_at)
    result = []
    for deal in deals:
        done = taken.get(deal.id, {})
        last_sent = max((at for out, at in done.values() if out == "sent"), default=None)
        due_now = sorted(
            (
                (kind, deal.closes_at - before)
                for kind, before in deal_reminders(deal).items()
                if deal.closes_at - before <= now and kind not in done
            ),
            key=lambda kv: kv[1],
            reverse=True,  # the latest moment (the shortest reminder) first
        )
        for i, (kind, moment) in enumerate(due_now):
            stale = (
                i > 0
                or now - moment > REMINDER_STALE
                or moment < deal.opens_at
                or deal.closes_at - now < REMINDER_MIN_LEFT
                or (last_sent is not None and last_sent >= moment)
            )
            result.append(ReminderDue(deal.id, kind, moment, stale))
    return result


async def take_reminder(
    session: AsyncSession, deal_id: int, kind: str, now: datetime, outcome: str
) -> bool:
    """Record the reminder (once per deal and kind); True when this call took it."""

    return await insert_ignore(
        session,
        DealReminderSent.__table__,
        {"deal_id": deal_id, "kind": kind, "outcome": outcome, "sent_at": now},
        ("deal_id", "kind"),
    )
