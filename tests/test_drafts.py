"""The wizards' drafts (services.deal_draft, services.post_draft) on their own: no Telegram,
no database. Each step reads its input with the services' parsers and rules, a refused input
changes nothing, the drafts survive the FSM data, and what a draft accepts is what
services.deals / services.calendar accept when the deal or post is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services import calendar, deals
from services.deal_draft import (
    BUTTON_ONLY,
    PAY_STEPS,
    STEPS,
    TYPED,
    DealDraft,
    Targets,
)
from services.drafts import Flow, UnknownChoice
from services.errors import DomainError, NotGroupAdmin
from services.parsing import ParseError, check_stored_reminders, parse_title
from services.post_draft import PostDraft, deal_code

NOW = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
SHANGHAI = Targets([], "Asia/Shanghai", "CNY")


def complete(**changes) -> DealDraft:
    draft = DealDraft(
        title="Mangoes",
        group_ids=[7],
        description="",
        photo=None,
        price=1250,
        currency="CNY",
        tiers=[(10, 1100)],
        min_kind="units",
        min_value=10,
        stock=None,
        limit=None,
        closes_at=NOW + timedelta(days=1),
        opens_at=None,
        pickup="",
    )
    for key, value in changes.items():
        setattr(draft, key, value)
    return draft


# ---------------------------------------------------------------- the deal draft


def test_the_whole_path_step_by_step() -> None:
    d = DealDraft()
    assert d.apply("title", "  Hainan   mangoes ", SHANGHAI, NOW) == "groups"
    assert d.preselect([7]) and d.group_ids == [7]
    assert d.confirm_groups({7: "CNY"}) == "description"
    assert d.skip("description") == "photo"
    assert d.set_photo("large") == "price"
    assert d.apply("price", "¥12.5", SHANGHAI, NOW) == "tiers"
    assert d.apply("tiers", "10:11.00, 20:9.90", SHANGHAI, NOW) == "minimum"
    assert d.choose("minimum", "kind", "units", SHANGHAI, NOW) == "min_value"
    assert d.apply("min_value", "10", SHANGHAI, NOW) == "stock"
    assert d.apply("stock", "50", SHANGHAI, NOW) == "limit"
    assert d.apply("limit", "3", SHANGHAI, NOW) == "closes"
    assert d.choose("closes", "pick", "2h", SHANGHAI, NOW) == "opens"
    assert d.choose("opens", "now", "", SHANGHAI, NOW) == "reminders"
    assert d.apply("reminders", "3h, 30m", SHANGHAI, NOW) == "pickup"
    assert d.apply("pickup", "Gate 3", SHANGHAI, NOW) == "preview"
    spec = d.spec()
    deals.validate(spec, NOW)  # what the draft accepted, creation accepts
    assert (spec.title, spec.unit_price, spec.currency) == ("Hainan mangoes", 1250, "CNY")
    assert spec.tiers == [(10, 1100), (20, 990)] and spec.reminders == "180,30"
    assert spec.closes_at == NOW + timedelta(hours=2) and spec.opens_at is None
    assert d.missing_step() is None


def test_fsm_data_round_trip_keeps_given_nones_and_leaves_out_the_rest() -> None:
    d = DealDraft()
    assert d.to_data() == {"draft": {}}
    d.apply("title", "Lychees", SHANGHAI, NOW)
    d.skip("minimum")  # given: None
    data = d.to_data()
    assert data == {"draft": {"title": "Lychees", "min_kind": None, "min_value": None}}
    assert DealDraft.from_data(data).to_data() == data
    d = complete(opens_at=NOW + timedelta(hours=1), quick=True)
    data = d.to_data()
    assert data["quick"] is True and data["draft"]["opens_at"] == "2026-11-20T01:00:00+00:00"
    assert data["draft"]["tiers"] == [[10, 1100]]
    back = DealDraft.from_data(data)
    assert back == d and back.to_data() == data
    # the format the wizard always stored reads the same
    old = {"draft": {"title": "X", "price": "990", "tiers": [], "closes_at": None}}
    read = DealDraft.from_data(old)
    assert read.price == 990 and read.tiers == [] and read.closes_at is None


def test_order_of_steps_passes_min_value_without_a_kind_and_quick_copies() -> None:
    d = complete(min_kind=None, min_value=None)
    assert d.next_step("minimum") == "stock" and d.prev_step("stock") == "minimum"
    d.min_kind = "participants"
    assert d.next_step("minimum") == "min_value" and d.prev_step("stock") == "min_value"
    assert d.prev_step("title") is None and d.next_step("pickup") == "preview"
    d.quick = True
    assert d.next_step("closes") == "preview" and d.prev_step("preview") == "closes"


@pytest.mark.parametrize("with_kind", [True, False])
def test_back_undoes_next_on_every_step(with_kind: bool) -> None:
    d = complete(min_kind="units" if with_kind else None)
    shown = [s for s in STEPS if (with_kind or s != "min_value") and s not in PAY_STEPS]
    for step, following in zip(shown, shown[1:], strict=False):
        assert d.next_step(step) == following and d.prev_step(following) == step


# What each step refuses (typed text, or a button it does not offer / cannot take now).
REFUSED: dict[str, list] = {
    "title": [("text", "x" * 101), ("text", "   ")],
    "groups": [("text", "Fruit Lovers"), ("toggle", 99), ("done", None)],
    "description": [("text", "x" * 1001), ("choose", "pick")],
    "photo": [("text", "here is my photo")],
    "pay": [("text", "card"), ("choose", "method", "card")],  # only cash: no such button
    "digital": [("text", "yes"), ("choose", "digital", "yes")],  # not a Stars deal
    "pay_time": [("text", "0"), ("text", "169"), ("choose", "keep")],
    "price": [("text", "0"), ("text", "12.345"), ("text", "12.50 XYZ"), ("choose", "skip")],
    "tiers": [("text", "10:13.00"), ("text", "20:11.00, 10:9.90"), ("text", "10")],
    "minimum": [("text", "10"), ("choose", "kind", "everyone")],
    "min_value": [("text", "0"), ("text", "10001"), ("text", "lots")],
    "stock": [("text", "5"), ("text", "0"), ("text", "99999")],
    "limit": [("text", "0"), ("text", "-1")],
    "closes": [("text", "2026-11-19 20:00"), ("text", "someday"), ("choose", "pick", "never")],
    "opens": [("text", "+3d"), ("text", "2026-11-19 20:00"), ("choose", "default")],
    "reminders": [("text", "4m"), ("text", "2h 1h 30m 15m"), ("text", "2h, 120m")],
    "pickup": [("text", "x" * 501), ("choose", "now")],
    "preview": [("text", "publish please"), ("choose", "keep")],
}


def test_every_step_has_refusals() -> None:
    assert set(REFUSED) == set(STEPS)


@pytest.mark.parametrize(
    ("step", "refusal"), [(s, r) for s, rs in REFUSED.items() for r in rs], ids=str
)
def test_a_refused_input_changes_nothing(step: str, refusal: tuple) -> None:
    d = complete()
    before = d.to_data()
    kind, *args = refusal
    with pytest.raises(DomainError):
        if kind == "text":
            d.apply(step, args[0], SHANGHAI, NOW)
        elif kind == "toggle":
            d.toggle_group(args[0], [7])
        elif kind == "done":
            d.group_ids = [99]
            before = d.to_data()
            d.confirm_groups({7: "CNY"})
        else:
            d.choose(step, args[0], args[1] if len(args) > 1 else "", SHANGHAI, NOW)
    assert d.to_data() == before


def test_kept_values_must_still_fit() -> None:
    d = complete(closes_at=NOW - timedelta(minutes=1))
    before = d.to_data()
    with pytest.raises(ParseError, match="time_past"):
        d.keep("closes", NOW)
    d = complete(stock=5)  # a minimum of 10 units was set after the stock
    with pytest.raises(ParseError, match="min_above_stock"):
        d.keep("stock", NOW)
    d = complete(price=1000)  # the tier of 11.00 no longer falls below the unit price
    with pytest.raises(ParseError, match="tiers_falling"):
        d.keep("tiers", NOW)
    with pytest.raises(UnknownChoice):
        complete(description="").keep("description", NOW)  # nothing to keep
    assert complete(closes_at=NOW - timedelta(minutes=1)).to_data() == before


def test_a_new_price_drops_tiers_that_no_longer_fall_and_regrouping_drops_the_price() -> None:
    d = complete()
    d.apply("price", "11.50", SHANGHAI, NOW)
    assert d.tiers == [(10, 1100)]
    d.apply("price", "10.00", SHANGHAI, NOW)
    assert d.tiers == []
    d = complete()
    with pytest.raises(ParseError, match="price_other_currency"):  # a CNY group: refused
        d.apply("price", "20 USD", SHANGHAI, NOW)
    assert (d.price, d.currency, d.tiers) == (1250, "CNY", [(10, 1100)])
    d = complete(group_ids=[7, 8])
    d.confirm_groups({7: "EUR", 8: "CNY"})
    assert "price" not in d.to_data()["draft"] and d.price is None and d.tiers is None
    assert d.missing_step() == "price"


def test_groups_only_owned_and_a_single_group_preselected() -> None:
    d = DealDraft()
    assert not d.preselect([1, 2]) and d.group_ids is None
    with pytest.raises(NotGroupAdmin):
        d.toggle_group(3, [1, 2])
    d.toggle_group(2, [1, 2])
    d.toggle_group(1, [1, 2])
    d.toggle_group(2, [1, 2])
    assert d.group_ids == [1]
    assert not d.keep_owned([2]) and d.group_ids == []
    with pytest.raises(ParseError, match="no_groups"):
        d.confirm_groups({2: "CNY"})


def test_closing_before_the_opening_asks_the_opening_again() -> None:
    d = complete(opens_at=NOW + timedelta(hours=5))
    d.apply("closes", "+3h", SHANGHAI, NOW)
    assert d.opens_at is None and d.closes_at == NOW + timedelta(hours=3)
    with pytest.raises(ParseError, match="closes_before_opens"):
        d.apply("opens", "+4h", SHANGHAI, NOW)
    d.apply("opens", "+1h", SHANGHAI, NOW)
    assert d.opens_at == NOW + timedelta(hours=1)
    d.apply("opens", "现在", SHANGHAI, NOW)
    assert d.opens_at is None


def test_the_draft_calls_the_rules_of_services_deals(monkeypatch) -> None:
    """The rules are written once: the draft runs services.deals' own checks."""
    seen: list[str] = []
    for name in ("check_closes", "check_opens", "check_window", "check_minimum_fits_stock"):
        original = getattr(deals, name)

        def spy(*args, _original=original, _name=name):
            seen.append(_name)
            return _original(*args)

        monkeypatch.setattr(deals, name, spy)
    d = complete()
    d.apply("stock", "50", SHANGHAI, NOW)
    d.apply("closes", "+3h", SHANGHAI, NOW)
    d.apply("opens", "+1h", SHANGHAI, NOW)
    assert set(seen) == {"check_closes", "check_opens", "check_window", "check_minimum_fits_stock"}


def test_step_for_a_creation_error() -> None:
    d = complete(opens_at=NOW - timedelta(hours=1))
    assert d.step_for_error(ParseError("time_past"), NOW) == "opens"
    assert complete().step_for_error(ParseError("time_past"), NOW) == "closes"
    assert complete().step_for_error(ParseError("min_above_stock"), NOW) == "stock"
    assert complete().step_for_error(ParseError("reminders_range"), NOW) == "reminders"


def test_typed_and_button_steps_partition_the_steps() -> None:
    assert set(TYPED) | set(BUTTON_ONLY) == set(STEPS) and not set(TYPED) & set(BUTTON_ONLY)


# ---------------------------------------------------------------- properties

texts = st.text(max_size=120)


@settings(deadline=None)
@given(texts)
def test_title_is_the_parsed_title_or_refused(text: str) -> None:
    d = DealDraft()
    try:
        d.apply("title", text, SHANGHAI, NOW)
    except ParseError:
        assert d.to_data() == {"draft": {}}
        return
    assert d.title == parse_title(text) and 0 < len(d.title) <= 100


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=1_000_000_000), st.sampled_from(["", "¥", " CNY"]))
def test_price_in_cents_is_read_exactly(cents: int, mark: str) -> None:
    text = f"{cents // 100}.{cents % 100:02d}"
    text = mark + text if mark == "¥" else text + mark
    d = DealDraft()
    try:
        d.apply("price", text, SHANGHAI, NOW)
    except ParseError as err:
        assert err.reason == "price_too_large" and cents > 1_000_000_000
        return
    assert (d.price, d.currency) == (cents, "CNY")


@settings(deadline=None)
@given(texts)
def test_any_price_text_is_a_positive_price_or_refused(text: str) -> None:
    d = complete()
    before = d.to_data()
    try:
        d.apply("price", text, SHANGHAI, NOW)
    except ParseError:
        assert d.to_data() == before
        return
    assert d.price is not None and d.price > 0


@settings(deadline=None)
@given(
    st.sampled_from(["units", "participants", None]),
    st.integers(1, 10_000),
    st.integers(-5, 20_000),
)
def test_stock_is_accepted_exactly_when_creation_accepts_it(kind, minimum: int, stock: int) -> None:
    d = complete(min_kind=kind, min_value=minimum if kind else None)
    try:
        d.apply("stock", str(stock), SHANGHAI, NOW)
        accepted = True
    except ParseError:
        accepted = False
    fits = 0 < stock <= 10_000 and not (kind == "units" and minimum > stock)
    assert accepted == fits
    if accepted:
        deals.validate(d.spec(), NOW)


@settings(deadline=None, max_examples=300)
@given(
    st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.integers(0, 72 * 60),
    st.one_of(st.none(), st.integers(1, 72 * 60)),
)
def test_accepted_times_are_accepted_at_creation(now: datetime, closes: int, opens) -> None:
    """Whatever the closes / opens steps accept, services.deals.validate accepts too; and
    what they refuse, it refuses."""
    d = complete(closes_at=None)
    try:
        d.apply("closes", f"+{closes}m", SHANGHAI, now)
    except ParseError:
        assert closes == 0  # "+0m" is not in the future
        return
    try:
        d.apply("opens", "now" if opens is None else f"+{opens}m", SHANGHAI, now)
    except ParseError as err:
        assert err.reason == "closes_before_opens"
        up = timedelta(minutes=opens or 0, seconds=59, microseconds=999_999)  # rounded up
        refused = complete(closes_at=d.closes_at, opens_at=deals.minute_of(now + up))
        with pytest.raises(ParseError):
            deals.validate(refused.spec(), now)
        return
    deals.validate(d.spec(), now)


@settings(deadline=None)
@given(st.text(max_size=70))
def test_reminders_are_stored_in_the_checked_form_or_refused(text: str) -> None:
    d = complete()
    try:
        d.apply("reminders", text, SHANGHAI, NOW)
    except ParseError:
        assert "reminders" not in d.to_data()["draft"]
        return
    assert check_stored_reminders(d.reminders) == d.reminders


@settings(deadline=None)
@given(st.integers(0, 30), st.integers(0, 70))
def test_quantities_in_range(value: int, other: int) -> None:
    for step in ("min_value", "limit"):
        d = complete()
        try:
            d.apply(step, str(value), SHANGHAI, NOW)
        except ParseError:
            assert value == 0
            continue
        assert getattr(d, step) == value


def test_flow_skips_what_is_passed() -> None:
    flow = Flow(("a", "b", "c"))
    assert (
        flow.after("a", lambda s: s == "b") == "c" and flow.before("c", lambda s: s == "b") == "a"
    )
    assert flow.after("c", lambda s: False) is None and flow.before("a", lambda s: False) is None


# ---------------------------------------------------------------- the post draft

BERLIN = "Europe/Berlin"
MARCH = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)


def test_post_draft_path_round_trip_and_spec() -> None:
    p = PostDraft(group_ids=[3, 4])
    assert p.toggle_group(3, {3, 4}) == "groups" and p.group_ids == [4]
    assert p.confirm_groups({4}) == "content"
    assert p.set_content("  Fresh mangoes!  ", None) == "button"
    assert p.choose("button", "nodeal", "") == "kind"
    assert p.choose("kind", "kind", "weekly") == "days"
    assert p.choose("days", "day", "5") == "days"
    assert p.choose("days", "day", "6") == "days"
    assert p.choose("days", "done", "") == "when"
    assert p.apply("when", "9:00", BERLIN, MARCH) == "preview"
    spec = p.spec()
    calendar.validate(spec, BERLIN, MARCH)
    assert (spec.text, spec.kind, spec.weekdays, spec.at_time) == (
        "Fresh mangoes!", "weekly", "5,6", "09:00",
    )  # fmt: skip
    data = p.to_data()
    assert PostDraft.from_data(data) == p and PostDraft.from_data(data).to_data() == data
    assert p.prev_step("when") == "days" and p.prev_step("kind") == "button"
    p.choose("kind", "kind", "daily")
    assert p.at_time is None and "at_time" not in p.to_data()["draft"]
    assert p.prev_step("when") == "kind" and p.next_step("kind") == "when"


def test_post_draft_edit_flow_ends_at_when() -> None:
    p = PostDraft(group_ids=[4], weekdays=[0], edit=12)
    assert p.prev_step("kind") is None and p.prev_step("groups") is None
    assert p.choose("kind", "kind", "once") == "when"
    assert p.apply("when", "2026-03-29 09:00", BERLIN, MARCH) is None  # saved now
    assert p.run_at == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert p.to_data()["edit"] == 12


POST_REFUSED: dict[str, list] = {
    "groups": [("toggle", 9), ("done",)],
    "content": [("content", ""), ("content", "x" * 4097), ("caption", "c" * 1025)],
    "button": [("code", "D"), ("code", "lots"), ("choose", "deal", "1")],
    "kind": [("choose", "kind", "hourly"), ("choose", "day", "1")],
    "days": [("choose", "day", "7"), ("choose", "day", "x"), ("choose", "done", "")],
    "when": [
        ("when", "once", "2026-02-30 10:00"),
        ("when", "once", "2026-01-01 10:00"),
        ("when", "daily", "25:61"),
        ("when", "cron", "* * * * *"),
        ("when", "cron", "0 0 30 2 *"),
    ],
    "preview": [("choose", "save", "")],
}


def test_every_post_step_has_refusals() -> None:
    from services.post_draft import STEPS as POST_STEPS

    assert set(POST_REFUSED) == set(POST_STEPS)


@pytest.mark.parametrize(
    ("step", "refusal"), [(s, r) for s, rs in POST_REFUSED.items() for r in rs], ids=str
)
def test_a_refused_post_input_changes_nothing(step: str, refusal: tuple) -> None:
    p = PostDraft(group_ids=[9] if refusal == ("done",) else [4], text="Hi", weekdays=[])
    if refusal[0] == "when":
        p.kind = refusal[1]
    before = p.to_data()
    kind, *args = refusal
    with pytest.raises(DomainError):
        if kind == "toggle":
            p.toggle_group(args[0], {4})
        elif kind == "done":
            p.confirm_groups({4})
        elif kind == "content":
            p.set_content(args[0], None)
        elif kind == "caption":
            p.set_content(args[0], "PHOTO")
        elif kind == "code":
            deal_code(args[0])
        elif kind == "when":
            p.apply("when", args[1], BERLIN, MARCH)
        else:
            p.choose(step, args[0], args[1])
    assert p.to_data() == before


@settings(deadline=None)
@given(st.integers(0, 30), st.integers(0, 70))
def test_clock_times_are_read_as_calendar_reads_them(hour: int, minute: int) -> None:
    p = PostDraft(group_ids=[4], kind="daily")
    text = f"{hour}:{minute:02d}"
    try:
        p.apply("when", text, BERLIN, MARCH)
    except ParseError:
        assert hour > 23 or minute > 59
        with pytest.raises(ParseError):
            calendar.parse_clock(text)
        return
    assert p.at_time == calendar.parse_clock(text) == f"{hour:02d}:{minute:02d}"


@settings(deadline=None)
@given(st.text(max_size=40))
def test_any_when_text_is_a_future_moment_or_refused(text: str) -> None:
    p = PostDraft(group_ids=[4], text="Hi", kind="once")
    try:
        p.apply("when", text, BERLIN, MARCH)
    except ParseError:
        assert p.run_at is None
        return
    assert p.run_at is not None and p.run_at > MARCH
    calendar.validate(p.spec(), BERLIN, MARCH)
