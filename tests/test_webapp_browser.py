"""The Mini App in a real browser: headless Chromium (Debian's package, /usr/bin/chromium)
driven by Playwright, loading the page served by a running `python -m bot` process that
polls a local fake Bot API server (tests/http_fake.py). `telegram-web-app.js` is replaced
by a stub whose initData the test signs; every other request outside the bot's server is
refused, so the page fetches nothing else at run time.

Alice (English) opens the group's storefront, opens the deal, picks 2, joins, sees the count
change, opens My orders and sees the order with its pickup code; the fake server recorded
the group post's edit. Then 小明 (Chinese) does the same in Chinese. Each page's
screenshot is saved (UPDATE_SCREENSHOTS=1 writes them to docs/screenshots/ for the README).

Skipped ONLY when /usr/bin/chromium is absent (a developer machine without it; CI installs
it in .ci/run)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import IN_CI, TOKEN
from tests.http_fake import FakeBotApiServer
from tests.webapp_sign import sign, web_user

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "docs" / "screenshots"
GROUP_CHAT = -1001000000999
OWNER, ALICE, MING = 501, 611, 612
POST_ID = 41


def need_chromium() -> None:
    """Skip (never under CI=true: fail) only when /usr/bin/chromium is absent."""
    if CHROMIUM.exists():
        return
    why = (
        "/usr/bin/chromium is absent: apt-get install -y chromium chromium-driver "
        "(CI installs it in .ci/run)"
    )
    if IN_CI:
        pytest.fail(why)
    pytest.skip(why)


STUB = """
window.Telegram = { WebApp: {
  initData: %(init)s,
  initDataUnsafe: { start_param: %(start)s },
  themeParams: {}, colorScheme: "light", platform: "tdesktop", version: "8.0",
  ready: function () { window.__ready = true; }, expand: function () {},
  BackButton: { show: function () {}, hide: function () {}, onClick: function () {} },
  HapticFeedback: { notificationOccurred: function () {} },
  openInvoice: function (url, cb) { window.__invoice = url; if (cb) cb("paid"); }
} };
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def seed(url: str) -> str:
    """The group (Owen its creator; Alice and 小明 members), an open deal posted in it as
    message POST_ID; returns the group's shop code."""
    from models import Database, Group, GroupAdmin, Membership
    from services import deals, people
    from services.people import Person
    from services.timezones import utcnow

    db = Database(url)
    now = utcnow()
    try:
        async with db.transaction() as s:
            group = Group(
                chat_id=GROUP_CHAT,
                title="Fruit Lovers",
                type="supergroup",
                timezone="Asia/Shanghai",
                currency="CNY",
                language="en",
                is_active=True,
                admins_refreshed_at=now,
            )
            s.add(group)
            await s.flush()
            s.add(GroupAdmin(group_id=group.id, user_id=OWNER, status="creator"))
            for uid, name, lang in (
                (OWNER, "Owen", "en"),
                (ALICE, "Alice", "en"),
                (MING, "小明", "zh-hans"),
            ):
                await people.remember(s, Person(uid, name, None, None, False, lang))
                s.add(Membership(group_id=group.id, user_id=uid, status="member", joined_at=now))
            spec = deals.DealSpec(
                title="Hainan mangoes",
                currency="CNY",
                unit_price=1250,
                closes_at=now + timedelta(hours=30),
                group_ids=[group.id],
                description="5 kg box, picked this week",
                pickup_note="Block 3 lobby, Saturday 10:00",
                stock=20,
                min_kind="units",
                min_value=5,
                per_person_limit=4,
                tiers=[(5, 1100), (10, 990)],
            )
            deal = await deals.create(s, OWNER, spec, now)
            await deals.claim_post(s, deal.id, group.id, now)
            await deals.store_post(s, deal.id, group.id, POST_ID, now)
            await deals.mark_rendered(s, deal.id, [group.id], deal.updated_at)
            return group.shop_code
    finally:
        await db.dispose()


def stub_for(user_id: int, name: str, language: str, code: str) -> str:
    data = sign(TOKEN, web_user(user_id, name, language), start_param=code)
    return STUB % {"init": json.dumps(data), "start": json.dumps(code)}


async def wait_until(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def healthy(port: int, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
            await writer.drain()
            answer = await reader.read(100)
            writer.close()
            if b"200" in answer:
                return True
        except OSError:
            pass
        await asyncio.sleep(0.1)
    return False


async def browse(browser, base: str, stub: str, tag: str, out: Path, strings: dict) -> None:
    """One person's visit: storefront → deal → ×2 Join → My orders, with screenshots."""
    context = await browser.new_context(
        viewport={"width": 390, "height": 720}, device_scale_factor=1
    )
    page = await context.new_page()
    outside: list[str] = []

    async def route(request_route):
        url = request_route.request.url
        if url == "https://telegram.org/js/telegram-web-app.js":
            await request_route.fulfill(status=200, content_type="text/javascript", body=stub)
        elif url.startswith(base):
            await request_route.continue_()
        else:
            outside.append(url)
            await request_route.abort()

    await page.route("**/*", route)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(f"{base}/app/")
    card = page.locator(".deal").first
    await card.wait_for()
    assert "Hainan mangoes" in await card.inner_text()
    assert await page.evaluate("window.__ready") is True
    await page.screenshot(path=str(out / f"shop-{tag}.png"))

    await card.click()
    await page.locator("#order").wait_for()
    before = await page.locator("#signups li").count()
    await page.locator("#plus").click()
    assert await page.locator("#qty").inner_text() == "2"
    await page.screenshot(path=str(out / f"deal-{tag}.png"))
    assert await page.locator("#order").inner_text() == strings["join"]
    await page.locator("#order").click()
    await page.locator("#cancel").wait_for()  # the page reloaded with the order
    assert await page.locator("#signups li").count() == before + 1
    assert strings["name"] + " ×2" in await page.locator("#signups").inner_text()
    assert await page.locator("#order").inner_text() == strings["change"]

    await page.locator("#mine").click()
    order = page.locator(".order").first
    await order.wait_for()
    text = await order.inner_text()
    assert "Hainan mangoes" in text and "×2" in text and strings["pickup"] in text
    assert len(await order.locator(".code").inner_text()) == 6
    await page.screenshot(path=str(out / f"orders-{tag}.png"))
    assert not problems, problems
    assert not outside, outside  # nothing fetched beyond the bot's server and the stub
    await context.close()


async def test_storefront_in_a_real_browser(tmp_path: Path) -> None:
    need_chromium()
    from playwright.async_api import async_playwright

    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite+aiosqlite:///{data / 'tuan.db'}"
    server = FakeBotApiServer(TOKEN)
    await server.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "DATABASE_URL": url,
        "DATA_DIR": str(data),
        "LOG_LEVEL": "INFO",
        "STARS_PAYMENTS": "false",
        "WEBAPP_URL": base,
        "WEBAPP_SHORT_NAME": "shop",
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
    }
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await migrate.communicate()
    assert migrate.returncode == 0, err[-2000:]
    code = await seed(url)
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    out = tmp_path / "shots"
    out.mkdir()
    try:
        assert await healthy(port), log_path.read_text(errors="replace")[-3000:]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
            )
            try:
                await browse(
                    browser, base, stub_for(ALICE, "Alice", "en", code), "en", out,
                    {"name": "Alice", "join": "Join", "change": "Change quantity",
                     "pickup": "Pickup code"},
                )  # fmt: skip
                edited = lambda: [  # noqa: E731
                    p for p in server.called("editMessageText")
                    if p.get("chat_id") == GROUP_CHAT and p.get("message_id") == POST_ID
                    and "Alice" in str(p.get("text"))
                ]  # fmt: skip
                assert await wait_until(lambda: bool(edited())), server.calls[-10:]
                assert "×2" in str(edited()[-1]["text"])
                markup = edited()[-1]["reply_markup"]
                urls = [b.get("url") for row in markup["inline_keyboard"] for b in row]
                assert f"https://t.me/tuan_test_bot/shop?startapp={code}" in urls
                await browse(
                    browser, base, stub_for(MING, "小明", "zh-hans", code), "zh", out,
                    {"name": "小明", "join": "参加", "change": "修改数量", "pickup": "提货码"},
                )  # fmt: skip
                assert await wait_until(
                    lambda: any(
                        "小明" in str(p.get("text")) for p in server.called("editMessageText")
                    )
                )
            finally:
                await browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
        await server.stop()
    assert proc.returncode == 0, log_path.read_text(errors="replace")[-2000:]
    [menu] = server.called("setChatMenuButton")  # the private chat's menu opens the app
    assert menu["menu_button"]["web_app"]["url"] == f"{base}/app/"
    shots = sorted(p.name for p in out.glob("*.png"))
    assert shots == [
        f"{page}-{tag}.png" for page in ("deal", "orders", "shop") for tag in ("en", "zh")
    ]
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        for shot in out.glob("*.png"):
            shutil.copy(shot, SHOTS / shot.name)
