"""The Mini App's JSON API (bot/webapp) against the real app and the fake Bot API, on SQLite
and PostgreSQL: every endpoint with valid, expired, forged and another person's initData;
orders through the one order action (the group post is edited after an app change, a chat
change shows in the app); teams, coupons, invoices, owners' read-only view, rate limits,
localized refusals; property tests of initData checking and of the token bucket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode

import pytest
from aiogram.methods import EditMessageText
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.runner import webapp_only
from bot.webapp import auth
from bot.webapp.limits import TokenBuckets
from handlers.callbacks import LangCB
from models import Coupon, Deal, Group, GroupAdmin, Membership, Order
from services import coupons, people
from services.people import Person
from services.timezones import utcnow
from tests.builders import person
from tests.conftest import TOKEN, Harness, SettableClock, make_settings
from tests.fake_api import FILE_BYTES, FakeTelegram
from tests.test_deal_post import GROUP, OWNER, add_group, create_deal, press, publish_deal
from tests.webapp_sign import sign, web_user

ALICE = person(611, "Alice")
BOB = person(612, "Bob")
MALLORY = person(613, "Mallory")  # in no group
PROVIDER = "284685063:TEST:fake-provider-token"


@pytest.fixture
async def harness(database_url, tmp_path, db) -> AsyncIterator[Harness]:
    settings_ = make_settings(
        database_url,
        tmp_path,
        webapp_url="https://shop.example.org",
        webapp_short_name="shop",
        stars_payments=True,
        payment_provider_token=PROVIDER,
        webapp_writes_per_minute=20,
    )
    api = FakeTelegram()
    from bot.factory import create_app
    from tests.builders import Updates

    app = create_app(settings_, session=api, db=db, clock=SettableClock())
    app.posts.interval = 0.05
    yield Harness(app, api, Updates())
    await app.close()


@pytest.fixture
async def client(harness) -> AsyncIterator[TestClient]:
    server = TestServer(webapp_only(harness.app))
    async with TestClient(server) as c:
        yield c


def init(user, *, age: int = 0, language: str = "en", start: str | None = None) -> str:
    return sign(
        TOKEN,
        web_user(user.id, user.first_name, language),
        start_param=start,
        auth_date=int(time.time()) - age,
    )


def forged(user) -> str:
    """Valid initData of `user` with the user swapped for another id: the hash no longer fits."""
    fields = dict(parse_qsl(init(user)))
    fields["user"] = fields["user"].replace(str(user.id), str(OWNER.id))
    return urlencode(fields)


def header(data: str) -> dict[str, str]:
    return {"Authorization": f"tma {data}"}


async def call(client, method: str, path: str, data: str | None, body: dict | None = None):
    headers = header(data) if data is not None else {}
    response = await client.request(method, f"/app/api/{path}", headers=headers, json=body)
    return response.status, await response.json()


async def member(harness, group_id: int, *users) -> None:
    async with harness.db.transaction() as s:
        for u in users:
            await people.remember(s, Person(u.id, u.first_name, None, None, False, "en"))
            s.add(Membership(group_id=group_id, user_id=u.id, status="member", joined_at=utcnow()))


async def shop_of(harness, group_id: int) -> str:
    async with harness.db.read() as s:
        return (await s.get(Group, group_id)).shop_code


async def open_shop(harness, **overrides) -> tuple[int, int, str]:
    """A group (Alice and Bob members, Owen its creator) with a published deal."""
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id], **overrides)
    assert await publish_deal(harness, deal_id) == 1
    await member(harness, group_id, ALICE, BOB)
    return group_id, deal_id, await shop_of(harness, group_id)


async def snapshot(harness) -> tuple:
    async with harness.db.read() as s:
        orders = (await s.execute(select(Order.user_id, Order.quantity, Order.status))).all()
        claims = await s.scalar(select(func.count()).select_from(Coupon))
    return sorted(orders), claims, len(harness.api.of(EditMessageText))


def endpoints(code: str, deal_id: int, order_id: int, coupon_id: int) -> list[tuple]:
    shop = f"shop/{code}"
    deal = f"{shop}/deals/{deal_id}"
    return [
        ("GET", "me", None),
        ("GET", shop, None),
        ("GET", deal, None),
        ("GET", f"{deal}/photo", None),
        ("GET", f"{deal}/orders", None),
        ("POST", f"{deal}/order", {"action": "set", "quantity": 2}),
        ("POST", f"{deal}/team", {"action": "start"}),
        ("POST", f"{shop}/coupons/{coupon_id}/claim", {}),
        ("GET", "orders", None),
        ("POST", f"orders/{order_id}/coupon", {"claim": 0}),
        ("POST", f"orders/{order_id}/invoice", {}),
    ]


# ---------------------------------------------------------------- authentication


async def test_every_endpoint_refuses_missing_forged_and_expired_init_data(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness, photo_file_id="AgACphoto")
    await press(harness, BOB, deal_id)  # an order to aim at
    async with harness.db.read() as s:
        order_id = await s.scalar(select(Order.id).where(Order.user_id == BOB.id))
    await harness.settle()
    before = await snapshot(harness)
    stale = init(ALICE, age=harness.app.settings.webapp_auth_seconds + 60)
    future = init(ALICE, age=-600)
    for method, path, body in endpoints(code, deal_id, order_id, 1):
        for data in (None, "", "garbage", forged(ALICE), stale, future, init(ALICE) + "x"):
            status, answer = await call(client, method, path, data, body)
            assert status == 401, (method, path, data, status)
            assert "expired" in answer["error"]
    # a bad scheme or an oversized header is refused the same way
    response = await client.get("/app/api/me", headers={"Authorization": init(ALICE)})
    assert response.status == 401
    response = await client.get("/app/api/me", headers=header("a" * 5000))
    assert response.status == 401
    await harness.settle()
    assert await snapshot(harness) == before  # nothing changed


async def test_another_persons_init_data_sees_nothing_of_theirs(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness)
    status, _ = await call(
        client, "POST", f"shop/{code}/deals/{deal_id}/order", init(BOB), {"action": "join"}
    )
    assert status == 200
    async with harness.db.read() as s:
        bobs = await s.scalar(select(Order.id).where(Order.user_id == BOB.id))
    before = await snapshot(harness)
    # Mallory is in no group: no shop, no deal, no orders of others, no changes
    for method, path, body in endpoints(code, deal_id, bobs, 1):
        status, answer = await call(client, method, path, init(MALLORY), body)
        if path == "me":
            assert status == 200 and answer["shops"] == []
        elif path == "orders":
            assert status == 200 and answer["orders"] == []
        else:
            assert status in (403, 404, 409), (path, status, answer)
            assert answer["error"]
    # Alice (a member) cannot touch Bob's order nor see the owners' view
    status, answer = await call(client, "POST", f"orders/{bobs}/coupon", init(ALICE), {"claim": 0})
    assert status == 409 and answer["error"] == (
        "That order cannot change its coupon now (paid, handed over or closed)."
    )
    status, _ = await call(client, "POST", f"orders/{bobs}/invoice", init(ALICE), {})
    assert status == 404
    status, _ = await call(client, "GET", f"shop/{code}/deals/{deal_id}/orders", init(ALICE))
    assert status == 403
    status, mine = await call(client, "GET", "orders", init(ALICE))
    assert mine["orders"] == []
    await harness.settle()
    after = await snapshot(harness)
    assert after[:2] == before[:2]


async def test_a_shop_code_is_opaque_and_bounded(harness, client) -> None:
    group_id, _deal_id, code = await open_shop(harness)
    assert code and str(GROUP.id) not in code and str(group_id) != code
    for bad in (str(GROUP.id), "x" * 40, "a%20b", code[:-1] + ("A" if code[-1] != "A" else "B")):
        status, answer = await call(client, "GET", f"shop/{bad}", init(ALICE))
        assert status in (403, 404), bad
    status, me = await call(client, "GET", "me", init(ALICE, start=code))
    assert status == 200
    assert me["start"] == code and me["shops"] == [{"code": code, "title": GROUP.title}]
    assert me["labels"]["join"] == "Join"


async def test_every_registered_group_gets_its_own_code(db) -> None:
    from services import groups, webapp

    defaults = groups.Defaults("Asia/Shanghai", "CNY", "en")
    async with db.transaction() as s:
        made = [
            (await groups.register(
                s, chat_id=-100100 - n, title=f"G{n}", chat_type="supergroup", added_by=None,
                defaults=defaults,
            ))[0]
            for n in range(5)
        ]  # fmt: skip
        codes = {g.shop_code for g in made}
        assert len(codes) == 5 and all(webapp.valid_code(c) and len(c) == 12 for c in codes)
        made[0].shop_code = None  # a group from before the column: issued when first needed
        await s.flush()
        issued = await webapp.shop_code(s, made[0])
        assert webapp.valid_code(issued) and issued not in codes - {None}
        assert await webapp.shop_codes(s, [g.id for g in made]) == {g.id: g.shop_code for g in made}


# ---------------------------------------------------------------- the storefront and a deal


async def test_join_in_the_app_edits_the_group_post_and_shows_in_my_orders(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(
        harness,
        stock=10,
        per_person_limit=5,
        min_kind="units",
        min_value=4,
        tiers=[(3, 1100)],
    )
    status, shop = await call(client, "GET", f"shop/{code}", init(ALICE))
    assert status == 200
    [shown] = shop["deals"]
    assert (shown["id"], shown["title"], shown["price"], shown["stock_left"]) == (
        deal_id,
        "Mangoes",
        "CN¥12.50",
        10,
    )
    assert shown["missing"] == 4 and shown["limit"] == 5 and shown["mine"] is None
    assert shown["next_tier"] == {"units": 3, "price": "CN¥11.00"}
    assert shown["time_left"].endswith("left")

    edits = len(harness.api.of(EditMessageText))
    status, done = await call(
        client, "POST", f"shop/{code}/deals/{deal_id}/order", init(ALICE),
        {"action": "set", "quantity": 3},
    )  # fmt: skip
    assert status == 200 and done == {"quantity": 3, "changed": True}
    await harness.settle()
    post = harness.last_edit(GROUP)
    assert len(harness.api.of(EditMessageText)) > edits
    assert "Alice" in post.text and "×3" in post.text
    assert "🛍 Shop" in {b.text for row in post.reply_markup.inline_keyboard for b in row}
    shop_button = post.reply_markup.inline_keyboard[-1][0]
    assert shop_button.url == f"https://t.me/tuan_test_bot/shop?startapp={code}"

    status, page = await call(client, "GET", f"shop/{code}/deals/{deal_id}", init(BOB))
    assert page["total_qty"] == 3 and page["price"] == "CN¥11.00" and page["tier_reached"]
    assert page["signups"] == [{"name": "Alice", "quantity": 3}]
    assert page["description"] == "Hainan mangoes, 5 kg box" and page["manages"] is False
    assert page["tiers"] == [{"units": 3, "price": "CN¥11.00"}]

    status, mine = await call(client, "GET", "orders", init(ALICE))
    [order] = mine["orders"]
    assert (order["quantity"], order["status"], order["cancellable"]) == (3, "active", True)
    assert len(order["pickup"]) == 6 and order["amount"] == "CN¥33.00"

    # a change in the chat shows in the app on its next load
    await press(harness, BOB, deal_id)
    status, page = await call(client, "GET", f"shop/{code}/deals/{deal_id}", init(BOB))
    assert page["total_qty"] == 4 and page["mine"]["quantity"] == 1 and page["missing"] == 0

    # cancel from the app
    status, done = await call(
        client, "POST", f"shop/{code}/deals/{deal_id}/order", init(ALICE), {"action": "cancel"}
    )
    assert status == 200 and done["quantity"] == 0
    await harness.settle()
    assert "Alice" not in harness.last_edit(GROUP).text


async def test_refusals_are_localized_and_change_nothing(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness, stock=3, per_person_limit=2)
    path = f"shop/{code}/deals/{deal_id}/order"
    status, answer = await call(client, "POST", path, init(ALICE), {"action": "set", "quantity": 3})
    assert status == 409 and answer["error"] == "The limit is 2 units per person."
    status, answer = await call(
        client, "POST", path, init(ALICE, language="zh-hans"), {"action": "set", "quantity": 3}
    )
    assert status == 409 and "2" in answer["error"] and "limit" not in answer["error"]
    for body in ({"action": "set", "quantity": -1}, {"action": "set", "quantity": "2"},
                 {"action": "set", "quantity": 10**12}, {"action": "fly"}, {}):  # fmt: skip
        status, answer = await call(client, "POST", path, init(ALICE), body)
        assert status in (400, 409) and answer["error"], body
    response = await client.post(f"/app/api/{path}", headers=header(init(ALICE)), data=b"[1,")
    assert response.status == 400
    status, _ = await call(client, "GET", f"shop/{code}/deals/999999", init(ALICE))
    assert status == 409
    status, _ = await call(client, "GET", f"shop/{code}/deals/0", init(ALICE))
    assert status == 404
    assert (await snapshot(harness))[0] == []


async def test_the_person_is_who_init_data_says_never_a_body_field(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness)
    status, _ = await call(
        client, "POST", f"shop/{code}/deals/{deal_id}/order", init(ALICE),
        {"action": "join", "user_id": BOB.id, "user": {"id": BOB.id}},
    )  # fmt: skip
    assert status == 200
    async with harness.db.read() as s:
        assert [o.user_id for o in await s.scalars(select(Order))] == [ALICE.id]


async def test_owners_view_is_for_current_administrators_only(harness, client) -> None:
    group_id, deal_id, code = await open_shop(harness)
    await press(harness, ALICE, deal_id, "qty", 2)
    status, view = await call(client, "GET", f"shop/{code}/deals/{deal_id}/orders", init(OWNER))
    assert status == 200
    assert (view["units"], view["people"]) == (2, 1)
    assert (view["paid"], view["owed"]) == ("CN¥0.00", "CN¥0.00")  # cash on pickup
    assert [(o["name"], o["quantity"]) for o in view["orders"]] == [("Alice", 2)]
    status, page = await call(client, "GET", f"shop/{code}/deals/{deal_id}", init(OWNER))
    assert page["manages"] is True
    # Owen is no longer an administrator: no owners' view (nor the shop: not a member)
    harness.api.set_admins(GROUP.id, BOB)
    async with harness.db.transaction() as s:
        await s.execute(GroupAdmin.__table__.delete().where(GroupAdmin.group_id == group_id))
        s.add(GroupAdmin(group_id=group_id, user_id=BOB.id, status="creator"))
    harness.app.admins.forget(group_id) if hasattr(harness.app.admins, "forget") else None
    status, _ = await call(client, "GET", f"shop/{code}/deals/{deal_id}/orders", init(OWNER))
    assert status == 403


async def test_photo_comes_through_getfile(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness, photo_file_id="AgACphoto")
    response = await client.get(
        f"/app/api/shop/{code}/deals/{deal_id}/photo", headers=header(init(ALICE))
    )
    assert response.status == 200 and await response.read() == FILE_BYTES
    status, _ = await call(client, "GET", f"shop/{code}/deals/{deal_id}/photo", init(MALLORY))
    assert status == 403


async def test_a_repeated_request_changes_nothing_more(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness, stock=5)
    path = f"shop/{code}/deals/{deal_id}/order"
    first = await call(client, "POST", path, init(ALICE), {"action": "set", "quantity": 2})
    await harness.settle()
    edits = len(harness.api.of(EditMessageText))
    again = await call(client, "POST", path, init(ALICE), {"action": "set", "quantity": 2})
    assert first == (200, {"quantity": 2, "changed": True})
    assert again == (200, {"quantity": 2, "changed": False})
    status, answer = await call(client, "POST", path, init(ALICE), {"action": "join"})
    assert status == 409 and answer["error"] == "You are already in with 2 units."
    await harness.settle()
    assert len(harness.api.of(EditMessageText)) == edits  # no change, no edit
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
        assert (deal.total_qty, deal.stock_left) == (2, 3)


async def test_the_lang_choice_comes_before_telegrams_language(harness, client) -> None:
    _group_id, _deal_id, code = await open_shop(harness)
    status, me = await call(client, "GET", "me", init(ALICE, language="en"))
    assert me["language"] == "en" and me["labels"]["my_orders"] == "My orders"
    await harness.tap(ALICE, LangCB(code="zh_Hans"))  # /lang's button
    status, me = await call(client, "GET", "me", init(ALICE, language="en"))
    assert me["language"] == "zh_Hans" and me["labels"]["my_orders"] == "我的订单"
    status, answer = await call(client, "GET", "shop/nope", init(ALICE))
    assert status == 403 and answer["error"] == "这个卖场只对本群成员开放。"
    status, answer = await call(client, "GET", "me", "forged", None)
    assert status == 401  # before knowing the person: the default language


# ---------------------------------------------------------------- teams, coupons, payment


async def test_start_and_join_a_team_from_the_app(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness, stock=10)
    await harness.say(OWNER, f"/teambuy D{deal_id} 2 8.00 24")
    path = f"shop/{code}/deals/{deal_id}/team"
    status, started = await call(client, "POST", path, init(ALICE), {"action": "start"})
    assert status == 200 and started["members"] == 1 and not started["filled"]
    status, page = await call(client, "GET", f"shop/{code}/deals/{deal_id}", init(BOB))
    [team] = page["team"]["open"]
    assert team["names"] == ["Alice"] and team["size"] == 2
    status, answer = await call(client, "POST", path, init(ALICE), {"action": "join", "team": 1})
    assert status == 409 and answer["error"] == "You are already in this team."
    status, joined = await call(
        client, "POST", path, init(BOB), {"action": "join", "team": started["team"]}
    )
    assert status == 200 and joined["filled"] is True
    status, answer = await call(client, "POST", path, init(BOB), {"action": "wave"})
    assert status == 400


async def test_claim_and_apply_a_coupon_then_pay_by_invoice_link(harness, client) -> None:
    group_id, deal_id, code = await open_shop(harness, pay_method="card", unit_price=1250, stock=5)
    async with harness.db.transaction() as s:
        coupon = await coupons.create(
            s,
            harness.app.admins,
            OWNER.id,
            group_id,
            coupons.CouponSpec(kind="amount", value=200, valid_days=3, total=5),
            utcnow(),
        )
        coupon_id = coupon.id
    status, shop = await call(client, "GET", f"shop/{code}", init(ALICE))
    assert [c["id"] for c in shop["coupons"]] == [coupon_id]
    status, claimed = await call(
        client, "POST", f"shop/{code}/coupons/{coupon_id}/claim", init(ALICE), {}
    )
    assert status == 200 and claimed["claim"]
    status, answer = await call(
        client, "POST", f"shop/{code}/coupons/{coupon_id}/claim", init(ALICE), {}
    )
    assert status == 409 and "as many" in answer["error"]

    status, _ = await call(
        client, "POST", f"shop/{code}/deals/{deal_id}/order", init(ALICE), {"action": "join"}
    )
    assert status == 200
    status, mine = await call(client, "GET", "orders", init(ALICE))
    [order] = mine["orders"]
    assert order["payable"] is True
    if order["coupon"] is None:  # not applied by itself: apply it from the app
        [option] = order["coupons"]
        status, _ = await call(
            client, "POST", f"orders/{order['id']}/coupon", init(ALICE), {"claim": option["claim"]}
        )
        assert status == 200
    async with harness.db.read() as s:
        row = await s.get(Order, order["id"])
        assert row.coupon_discount == 200
    status, link = await call(client, "POST", f"orders/{order['id']}/invoice", init(ALICE), {})
    assert status == 200
    assert link["link"].startswith("https://t.me/$invoice-pay:")
    [made] = [r for r in harness.api.requests if type(r).__name__ == "CreateInvoiceLink"]
    assert (made.currency, made.prices[0].amount, made.provider_token) == ("CNY", 1050, PROVIDER)
    status, _ = await call(client, "POST", f"orders/{order['id']}/invoice", init(BOB), {})
    assert status == 404


async def test_an_order_with_nothing_to_pay_gets_no_invoice(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness)
    await call(
        client, "POST", f"shop/{code}/deals/{deal_id}/order", init(ALICE), {"action": "join"}
    )
    status, mine = await call(client, "GET", "orders", init(ALICE))
    [order] = mine["orders"]
    assert order["payable"] is False
    status, answer = await call(client, "POST", f"orders/{order['id']}/invoice", init(ALICE), {})
    assert status == 409 and answer["error"] == "This order has nothing to pay here."


# ---------------------------------------------------------------- limits and concurrency


async def test_writes_are_rate_limited_per_person(harness, client) -> None:
    _group_id, deal_id, code = await open_shop(harness, stock=100, per_person_limit=50)
    path = f"shop/{code}/deals/{deal_id}/order"
    statuses = [
        (await call(client, "POST", path, init(ALICE), {"action": "set", "quantity": n % 3 + 1}))[0]
        for n in range(25)
    ]
    assert statuses[:20] == [200] * 20 and set(statuses[20:]) == {429}
    status, answer = await call(client, "POST", path, init(ALICE), {"action": "cancel"})
    assert status == 429 and answer["error"].startswith("Too many changes")
    status, _ = await call(client, "POST", path, init(BOB), {"action": "join"})
    assert status == 200  # another person's bucket is full
    status, _ = await call(client, "GET", f"shop/{code}", init(ALICE))
    assert status == 200  # reads are not limited


async def test_simultaneous_joins_from_the_app_never_oversell(harness, client) -> None:
    group_id, deal_id, code = await open_shop(harness, stock=3)
    crowd = [person(700 + n, f"P{n}") for n in range(8)]
    await member(harness, group_id, *crowd)
    path = f"shop/{code}/deals/{deal_id}/order"
    results = await asyncio.gather(
        *(call(client, "POST", path, init(p), {"action": "set", "quantity": 1}) for p in crowd)
    )
    assert sorted(status for status, _ in results) == [200] * 3 + [409] * 5
    async with harness.db.read() as s:
        active = await s.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.status == "active", Order.quantity > 0)
        )
    assert active == 3


# ---------------------------------------------------------------- serving


async def test_the_page_and_its_files_are_served_in_both_modes(harness, client) -> None:
    response = await client.get("/app/")
    page = await response.text()
    assert response.status == 200 and "telegram-web-app.js" in page and "static/app.js" in page
    # no file from anywhere else than Telegram's script
    assert page.count("https://") == 1
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        response = await client.get(f"/app/static/{name}")
        assert response.status == 200 and kind in response.headers["Content-Type"]
    assert (await client.get("/app/static/../routes.py")).status in (403, 404)
    assert (await client.get("/healthz")).status == 200
    # webhook mode: the webhook server serves the same routes
    from bot.runner import InFlight, webhook_app

    harness.app.settings.webhook_secret = SecretStr("s" * 20)
    routes = {
        r.resource.canonical
        for r in webhook_app(harness.app, asyncio.Event(), InFlight()).router.routes()
    }
    assert {"/webhook", "/app/", "/app/api/me", "/app/api/orders"} <= routes


async def test_posts_carry_the_shop_button_only_when_the_app_is_set_up(harness) -> None:
    harness.app.posts.shop = None  # WEBAPP_URL or WEBAPP_SHORT_NAME unset
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id])
    await publish_deal(harness, deal_id)
    post = harness.api.sent(GROUP.id)[-1]
    assert "🛍 Shop" not in {b.text for row in post.reply_markup.inline_keyboard for b in row}
    harness.app.posts.shop = "shop"
    await press(harness, ALICE, deal_id)
    await harness.settle()
    edit = harness.last_edit(GROUP)
    code = await shop_of(harness, group_id)
    assert edit.reply_markup.inline_keyboard[-1][0].url.endswith(f"/shop?startapp={code}")


def test_settings_of_the_app(tmp_path) -> None:
    base = dict(database_url="sqlite+aiosqlite:///x.db", tmp_path=tmp_path)
    assert not make_settings(**base).shop_links
    assert not make_settings(**base, webapp_url="https://a.example").shop_links
    assert make_settings(
        **base, webapp_url="https://a.example", webapp_short_name="shop"
    ).shop_links
    for bad in ("a", "has space", "x" * 31):
        with pytest.raises(ValueError, match="WEBAPP_SHORT_NAME"):
            make_settings(**base, webapp_short_name=bad)
    with pytest.raises(ValueError, match="not an http"):
        make_settings(**base, webapp_url="ftp://a.example")


# ---------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from(["auth_date", "user", "query_id", "start_param", "hash"]),
    value=st.text(min_size=1, max_size=20),
)
def test_any_tampered_field_fails_the_check(key: str, value: str) -> None:
    good = sign(TOKEN, web_user(5, "Eve"), start_param="abc")
    fields = dict(parse_qsl(good))
    if fields[key] == value:
        return
    fields[key] = value
    now = utcnow()
    assert auth.authenticate(TOKEN, "tma " + urlencode(fields), now, 3600) is None
    assert auth.authenticate(TOKEN, "tma " + good, now, 3600) is not None


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
def test_shop_codes_outside_the_alphabet_or_too_long_are_refused(code: str) -> None:
    from services.webapp import CODE_MAX, valid_code

    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert valid_code(code) == (0 < len(code) <= CODE_MAX and set(code) <= allowed)
    assert valid_code(code + "x" * (CODE_MAX + 1)) is False


@given(st.text(max_size=300))
def test_arbitrary_headers_never_authenticate(raw: str) -> None:
    now = utcnow()
    assert auth.authenticate(TOKEN, raw, now, 3600) is None
    assert auth.authenticate(TOKEN, "tma " + raw, now, 3600) is None


@given(age=st.integers(min_value=-10_000, max_value=200_000))
def test_freshness_bound(age: int) -> None:
    now = utcnow()
    data = sign(TOKEN, web_user(5, "Eve"), auth_date=int(now.timestamp()) - age)
    caller = auth.authenticate(TOKEN, "tma " + data, now, 86400)
    fresh = -60 <= age <= 86400
    if -59 <= age <= 86399:
        assert caller is not None and caller.user.id == 5
    elif not fresh:
        assert caller is None


@given(st.lists(st.floats(min_value=0, max_value=30), max_size=60))
def test_token_bucket_never_gives_more_than_capacity_plus_refill(gaps: list[float]) -> None:
    clock = [0.0]
    buckets = TokenBuckets(per_minute=6, clock=lambda: clock[0])
    granted = 0
    for gap in gaps:
        clock[0] += gap
        granted += buckets.take(1)
    assert granted <= 6 + int(clock[0] * 6 / 60) + 1


def test_expiry_bound_is_a_setting(tmp_path) -> None:
    settings_ = make_settings("sqlite+aiosqlite:///x.db", tmp_path, webapp_auth_seconds=120)
    data = sign(TOKEN, web_user(5, "Eve"), auth_date=int(time.time()) - 300)
    assert auth.authenticate(TOKEN, "tma " + data, utcnow(), settings_.webapp_auth_seconds) is None
