"""Callback data bounds (handlers.callbacks) and the root errors router (handlers.errors):
every factory fits Telegram's 64 bytes and refuses numbers its columns cannot hold; a
handler of every router that raises leaves nothing written and still answers the user."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from aiogram import methods as m
from aiogram.filters.callback_data import CallbackData
from aiogram.types import Update
from annotated_types import Ge, Le, MaxLen
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import handlers
from bot import failures, runner
from bot.i18n import make_i18n
from bot.middlewares.chatter import chatter_middleware
from handlers import callbacks, errors
from handlers.callbacks import (
    FACTORIES,
    BargainCB,
    CardCB,
    CouponCB,
    DealCB,
    DigestCB,
    EventCB,
    ForgetCB,
    InviteCB,
    LangCB,
    LotteryCB,
    MembersCB,
    ModCB,
    MyCreditCB,
    MyOrdersCB,
    OrdersCB,
    OwnerDealCB,
    PayCB,
    PollCB,
    PrivateDealCB,
    ReviewCB,
    ScheduleItemCB,
    SettingsCB,
    TeamCB,
    WizardCB,
)
from models import FailedUpdate, Group, ProcessedUpdate, User
from services import credit, digest, fulfilment
from services import orders as order_service
from services.errors import DomainError, GroupNotFound, NotGroupAdmin
from services.parsing import ParseError
from tests.builders import group, person, private

ERIN = person(7001, "Erin")
WEI = person(7002, "Wei", language="zh-hans")
CLUB = group(-1001000007001, "Errors Club")
APOLOGY = "Something went wrong. Please try again."
GONE = "That group is unknown or I am no longer in it."


# ---------------------------------------------------------------- callback data


def _bounds(factory: type[CallbackData], name: str) -> tuple[int | None, int | None, int | None]:
    """(ge, le, max_length) of a field, from its Annotated metadata."""
    ge = le = max_length = None
    for item in factory.model_fields[name].metadata:
        if isinstance(item, Ge):
            ge = item.ge
        elif isinstance(item, Le):
            le = item.le
        elif isinstance(item, MaxLen):
            max_length = item.max_length
    return ge, le, max_length


def _longest(factory: type[CallbackData]) -> list[dict[str, object]]:
    """Instances' values with every field at its longest: the largest and the most negative
    number, a string of the maximal length."""
    high: dict[str, object] = {}
    low: dict[str, object] = {}
    for name, field in factory.model_fields.items():
        ge, le, max_length = _bounds(factory, name)
        if field.annotation is int:
            high[name], low[name] = le, ge
        else:
            high[name] = low[name] = "x" * max_length
    return [high, low]


def test_every_factory_lives_in_handlers_callbacks() -> None:
    handlers.build_routers()  # imports every handler module
    project = ("handlers", "bot", "services", "scheduler")
    defined = {c for c in CallbackData.__subclasses__() if c.__module__.startswith(project)}
    assert {cls.__module__ for cls in defined} == {"handlers.callbacks"}
    assert defined == set(FACTORIES)
    prefixes = [cls.__prefix__ for cls in FACTORIES]
    assert len(set(prefixes)) == len(prefixes)


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_every_field_is_bounded_and_packs_within_64_bytes(factory) -> None:
    for name, field in factory.model_fields.items():
        ge, le, max_length = _bounds(factory, name)
        if field.annotation is int:
            assert ge is not None and le is not None, f"{factory.__name__}.{name} is unbounded"
            assert le <= callbacks.MAX_BIG and ge >= -callbacks.MAX_BIG
        else:
            assert field.annotation is str and max_length, f"{factory.__name__}.{name}"
    for values in _longest(factory):
        packed = factory(**values).pack()  # pack() itself refuses more than 64 bytes
        assert len(packed.encode()) <= 64, packed
        assert factory.unpack(packed) == factory(**values)


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_values_beyond_the_bounds_do_not_unpack(factory) -> None:
    names = list(factory.model_fields)
    values = _longest(factory)[0]
    parts = factory(**values).pack().split(":")
    for index, name in enumerate(names, start=1):
        ge, le, max_length = _bounds(factory, name)
        beyond = [str(ge - 1), str(le + 1), "1" * 30] if max_length is None else ["y" * 65]
        for bad in beyond:
            forged = ":".join(parts[:index] + [bad] + parts[index + 1 :])
            with pytest.raises((ValidationError, ValueError)):
                factory.unpack(forged)


def _forged(factory: type[CallbackData]) -> str:
    """The factory's longest data with its first field pushed past its bound."""
    name = next(iter(factory.model_fields))
    ge, le, max_length = _bounds(factory, name)
    parts = factory(**_longest(factory)[0]).pack().split(":")
    parts[1] = "y" * (max_length + 1) if max_length is not None else str(le + 1)
    return ":".join(parts)


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
async def test_a_forged_button_of_every_factory_is_answered(harness, factory) -> None:
    """Out-of-range data does not unpack, so no handler of the factory takes it; the
    fallback still answers it (the client would otherwise keep waiting)."""
    chat = CLUB if factory is DealCB else private(ERIN)
    await harness.feed(harness.updates.callback(ERIN, _forged(factory), chat=chat))
    [answer] = harness.api.answers()
    assert answer.show_alert and answer.text == "This button is out of date."


def test_ids_follow_their_columns() -> None:
    assert callbacks.MAX_ID == 2**31 - 1 and callbacks.MAX_BIG == 2**63 - 1
    assert DealCB.unpack(f"dp:join:{2**31 - 1}:0").deal_id == 2**31 - 1
    for forged in (f"dp:join:{2**31}:0", "dp:join:0:0", "dp:qty:5:10001", "dp:qty:5:-1"):
        with pytest.raises(ValueError):
            DealCB.unpack(forged)
    assert OwnerDealCB.unpack("od:list:0:0").deal_id == 0  # 0: no deal on a list button
    pseudonym = -(2**62)  # forgotten members keep negative ids
    packed = f"com:pay:1:{pseudonym}:CNY"
    assert callbacks.CommissionCB.unpack(packed).user_id == pseudonym
    assert callbacks.valid_id(1) and callbacks.valid_id(2**31 - 1)
    assert not callbacks.valid_id(0) and not callbacks.valid_id(2**31)


# ---------------------------------------------------------------- domain error texts


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (NotGroupAdmin(), "You are not an owner or administrator of that group."),
        (GroupNotFound(), GONE),
        (order_service.SoldOut(0), "Sold out."),
        (order_service.LimitExceeded(2), "The limit is 2 units per person."),
        (ParseError("quantity_positive"), "at least 1"),
        (credit.CannotSpend("no_credit"), "credit"),
        (digest.DigestArgError("future", "2099-01-01"), "in the future"),
        (fulfilment.UnknownPickupCode("<X>"), "No order has the pickup code <code>&lt;X&gt;"),
        (DomainError(), "That is not possible right now."),
    ],
)
def test_domain_errors_have_their_handlers_texts(error, expected) -> None:
    i18n = make_i18n("en")
    with i18n.context(), i18n.use_locale("en"):
        assert expected in errors.error_text(error)


def test_alert_texts_are_plain_and_short() -> None:
    assert errors.plain("<b>a &amp; b</b> <code>x</code>") == "a & b x"
    assert len(errors.plain("x" * 500)) == 200


def test_the_errors_router_and_the_runner_classify_failures_the_same_way() -> None:
    """One predicate (bot.failures.is_transient), no tuple of its own in either module."""
    assert errors.is_transient is failures.is_transient
    assert runner.failures is failures
    assert not hasattr(errors, "TRANSIENT") and not hasattr(runner, "RETRYABLE")


# ---------------------------------------------------------------- a handler of every router


@dataclass(frozen=True)
class Case:
    router: str
    kind: str  # "command", "button" or "card" (a button on an inline card)
    text: str  # the command, or the callback data
    in_group: bool = False

    def update(self, harness, user=ERIN) -> Update:
        chat = CLUB if self.in_group else private(user)
        if self.kind == "command":
            return harness.updates.command(chat, user, self.text)
        if self.kind == "card":  # a button on an inline card in some chat: no message
            return harness.updates.card_tap(user, self.text, "AgAAAExample")
        return harness.updates.callback(user, self.text, chat=chat)

    def __str__(self) -> str:
        return f"{self.router}-{self.kind}-{self.text}"


def command(router: str, text: str, *, in_group: bool = False) -> Case:
    return Case(router, "command", text, in_group)


def button(router: str, data: str, *, in_group: bool = False) -> Case:
    return Case(router, "button", data, in_group)


CASES = [
    command("groups", "/help", in_group=True),
    command("deal_wizard", "/newdeal"),
    button("deal_wizard", WizardCB(step="title", action="cancel").pack()),
    command("owner_deals", "/deals"),
    button("owner_deals", OwnerDealCB(action="list").pack()),
    command("schedule", "/schedule"),
    button("schedule", ScheduleItemCB(action="list").pack()),
    command("settings", "/settings"),
    button("settings", SettingsCB(action="list").pack()),
    command("invites", "/invite"),
    button("invites", InviteCB(group_id=1).pack()),
    command("teams", "/teambuy D1"),
    button("teams", TeamCB(action="join", id=1).pack()),
    command("bargains", "/bargains D1"),
    button("bargains", BargainCB(action="help", id=1).pack()),
    command("coupons", "/coupons"),
    button("coupons", CouponCB(action="claim", id=1).pack()),
    command("polls", "/polls"),
    button("polls", PollCB(action="deal", id=1).pack()),
    command("lotteries", "/lottery"),
    button("lotteries", LotteryCB(action="claim", id=1).pack()),
    command("gatherings", "/event"),
    button("gatherings", EventCB(action="join", deal_id=1).pack(), in_group=True),
    command("share", "/start deal_1"),
    button("share", PrivateDealCB(action="join", deal_id=1, group_id=1).pack()),
    command("deal_post", "/deals", in_group=True),
    button("deal_post", DealCB(action="join", deal_id=1).pack(), in_group=True),
    Case("inline", "card", CardCB(action="join", code="abc").pack()),
    command("digest", "/digest"),
    button("digest", DigestCB(action="sub", group_id=1).pack()),
    command("owner_orders", "/orders D1"),
    button("owner_orders", OrdersCB(action="list", deal_id=1).pack()),
    command("my_orders", "/myorders"),
    button("my_orders", MyOrdersCB(action="page").pack()),
    command("reviews", "/reviews"),
    button("reviews", ReviewCB(action="rate", id=1, stars=5).pack()),
    command("credit", "/mycredit"),
    button("credit", MyCreditCB(action="view").pack()),
    command("privacy", "/mydata"),
    button("privacy", ForgetCB(action="cancel").pack()),
    command("activity", "/top", in_group=True),
    button("activity", MembersCB(action="list").pack()),
    command("status", "/status"),
    command("payments", "/terms"),
    button("payments", PayCB(action="out", payment_id=1).pack()),
    command("start", "/help"),
    button("start", LangCB(code="en").pack()),
    command("moderation", "/modlog"),
    button("moderation", ModCB(action="open", group_id=1).pack()),
    command("fallback", "/nonsense"),
    button("fallback", "zz:garbage"),
]
NO_HANDLERS = {"errors"}  # handles the errors of the others


def test_every_router_is_covered() -> None:
    names = [r.name for r in handlers.build_routers()]
    assert names[0] == "errors", "the errors router must come first"
    covered = {case.router for case in CASES}
    missing = set(names) - NO_HANDLERS - covered
    assert not missing, f"add a case to tests/test_errors.py CASES for {sorted(missing)}"
    assert covered <= set(names)


def router_named(harness, name: str):
    [found] = [r for r in harness.app.dispatcher.sub_routers if r.name == name]
    return found


class Boom:
    """Stands in for every message and button handler of one router: writes (when the
    handler has a transaction), then raises."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0
        self.wrote = False

    async def __call__(self, *args, **kwargs):
        self.calls += 1
        session = kwargs.get("session")
        if session is not None:
            session.add(Group(chat_id=-1009999999999, title="ghost", timezone="UTC",
                              currency="CNY", language="en"))  # fmt: skip
            await session.flush()
            self.wrote = True
        raise self.error


def patch_router(monkeypatch, harness, name: str, boom: Boom) -> int:
    router = router_named(harness, name)
    patched = 0
    for observer in (router.message, router.callback_query):
        for handler in observer.handlers:
            monkeypatch.setattr(handler, "callback", boom)
            patched += 1
    return patched


async def rows(harness, model) -> int:
    async with harness.db.read() as s:
        return await s.scalar(select(func.count()).select_from(model))


async def answer_of(harness, case: Case, before: int, chat_id: int) -> tuple[str, object]:
    if case.kind in ("button", "card"):
        answers = harness.api.answers()
        assert len(answers) == before + 1, "the button was not answered"
        assert answers[-1].show_alert
        return answers[-1].text, None
    sent = harness.api.sent(chat_id)
    assert len(sent) == before + 1, "the command got no reply"
    return sent[-1].text, sent[-1].reply_parameters


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_failing_handler_of_every_router_is_answered(
    harness, monkeypatch, case, caplog
) -> None:
    chat_id = CLUB.id if case.in_group else ERIN.id
    recorded = 0
    for error, expected in ((RuntimeError("bug"), APOLOGY), (GroupNotFound(), GONE)):
        boom = Boom(error)
        with monkeypatch.context() as patch:
            assert patch_router(patch, harness, case.router, boom) > 0
            if case.kind in ("button", "card"):
                before = len(harness.api.answers())
            else:
                before = len(harness.api.sent(chat_id))
            with caplog.at_level(logging.INFO, logger="handlers.errors"):
                update = case.update(harness)
                assert await harness.feed(update)  # acknowledged
        assert boom.calls == 1, f"the update did not reach the {case.router} router"
        text, reply = await answer_of(harness, case, before, chat_id)
        assert text == expected
        if case.kind == "command" and case.in_group:
            assert reply is not None  # a reply to the command in the group
        assert f"update {update.update_id}" in caplog.text
        # the transaction rolled back: the handler's row, the user
        assert await rows(harness, User) == 0
        async with harness.db.read() as s:
            assert await s.scalar(select(Group).where(Group.title == "ghost")) is None
        # a bug is recorded, with the update id marked processed; a refusal is not
        if isinstance(error, RuntimeError):
            recorded += 1
            async with harness.db.read() as s:
                row = await s.scalar(
                    select(FailedUpdate).where(FailedUpdate.update_id == update.update_id)
                )
            assert row is not None and row.status == "failed"
            assert row.update_type == ("message" if case.kind == "command" else "callback_query")
        assert await rows(harness, ProcessedUpdate) == recorded
        assert await rows(harness, FailedUpdate) == recorded


async def test_a_handler_that_wrote_and_raised_leaves_no_row(harness, monkeypatch) -> None:
    boom = Boom(RuntimeError("after writing"))
    update = harness.updates.command(private(ERIN), ERIN, "/help")
    with monkeypatch.context() as patch:
        patch_router(patch, harness, "start", boom)
        await harness.feed(update)
    assert boom.wrote  # /help has a transaction: the row was flushed before the error
    assert harness.api.texts(ERIN.id) == [APOLOGY]
    assert await rows(harness, Group) == 0
    assert await rows(harness, User) == 0  # the middleware's profile row went too
    # recorded as failed and processed: it would fail the same way again
    assert await rows(harness, ProcessedUpdate) == 1
    assert await rows(harness, FailedUpdate) == 1

    await harness.feed(update)  # the same update again, now without the failure
    assert harness.api.texts(ERIN.id) == [APOLOGY]  # a redelivery changes nothing
    assert await rows(harness, User) == 0
    await harness.send(ERIN, "/help")  # a new update is handled
    assert "/help" in harness.last(ERIN).text
    assert await rows(harness, User) == 1


async def test_a_transient_failure_is_answered_and_still_reaches_the_runner(
    harness, monkeypatch
) -> None:
    """The runner must see database failures (the webhook answers 500, Telegram delivers
    the update again); the user is told all the same."""
    failure = OperationalError("UPDATE users", {}, ConnectionError("gone"))
    for case in (command("start", "/help"), button("start", LangCB(code="en").pack())):
        with monkeypatch.context() as patch:
            patch_router(patch, harness, "start", Boom(failure))
            with pytest.raises(OperationalError):
                await runner.process(harness.app, case.update(harness))
            assert not await harness.feed(case.update(harness))  # to be tried again
    assert harness.api.texts(ERIN.id) == [APOLOGY, APOLOGY]
    assert [a.text for a in harness.api.answers()] == [APOLOGY, APOLOGY]
    assert await rows(harness, ProcessedUpdate) == 0
    async with harness.db.read() as s:
        statuses = list(await s.scalars(select(FailedUpdate.status)))
    assert statuses == ["retrying", "retrying"]


async def test_failing_to_answer_is_logged_not_raised(harness, monkeypatch, caplog) -> None:
    with monkeypatch.context() as patch:
        patch_router(patch, harness, "start", Boom(RuntimeError("bug")))
        harness.api.fail_next("bad_request", m.AnswerCallbackQuery)
        harness.api.fail_next("forbidden", m.SendMessage)
        with caplog.at_level(logging.WARNING, logger="handlers.errors"):
            await harness.feed(harness.updates.callback(ERIN, LangCB(code="en").pack()))
            await harness.send(ERIN, "/help")
    assert caplog.text.count("could not answer after the failure") == 2


async def test_the_apology_speaks_the_users_language(harness, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        patch_router(patch, harness, "start", Boom(RuntimeError("bug")))
        await harness.send(WEI, "/help")
        await harness.feed(harness.updates.callback(WEI, LangCB(code="en").pack()))
    assert harness.api.texts(WEI.id) == ["出错了，请再试一次。"]
    assert harness.api.answers()[-1].text == "出错了，请再试一次。"


async def test_group_chatter_that_fails_gets_no_answer(harness, monkeypatch) -> None:
    """Only commands are answered in groups: a failing plain message stays silent."""
    boom = Boom(RuntimeError("bug"))
    with monkeypatch.context() as patch:
        patch_router(patch, harness, "groups", boom)

        async def chatter(message) -> None:
            await boom(message)

        router_named(harness, "groups").message.register(chatter)  # any group message
        # a handler of plain group texts is new here: the chatter fast path (which finishes
        # such texts before the routers, bot/middlewares/chatter.py) must let them through
        chatter_middleware(harness.app.dispatcher).enabled = False
        await harness.send(ERIN, "hello", CLUB)
    assert boom.calls == 1
    assert harness.api.sent() == [] and harness.api.answers() == []
