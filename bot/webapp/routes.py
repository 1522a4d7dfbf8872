"""The Mini App's HTTP side: static files at /app/ and the JSON API at /app/api/.

Every API call carries `Authorization: tma <initData>` (auth.py): without it, or with a
forged or expired one, the answer is 401 and nothing is read or changed. Writes take a
token of the person's bucket first (limits.py: 429 when empty). A change runs in one unit of
work (`Database.transaction`) through the services the chat's buttons call, so its events
refresh the group post after the commit like a button's. Refusals are 4xx answers with a
sentence in the person's language (their /lang choice, else their Telegram language).

    GET  /app/api/me                                 the person, labels, their groups
    GET  /app/api/shop/{code}                        a group's storefront
    GET  /app/api/shop/{code}/deals/{deal}           a deal's page
    GET  /app/api/shop/{code}/deals/{deal}/photo     its photo (through getFile)
    GET  /app/api/shop/{code}/deals/{deal}/orders    owners: the deal's orders and totals
    POST /app/api/shop/{code}/deals/{deal}/order     {"action": join|set|cancel, "quantity"}
    POST /app/api/shop/{code}/deals/{deal}/team      {"action": start} | {"action": join, "team"}
    POST /app/api/shop/{code}/coupons/{coupon}/claim
    GET  /app/api/orders                             my orders (and the coupons each can use)
    POST /app/api/orders/{order}/coupon              {"claim": id, 0 for none}
    POST /app/api/orders/{order}/invoice             an invoice link for Telegram.WebApp.openInvoice
"""

from __future__ import annotations

import io
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiogram.types import LabeledPrice
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.posts import display_name
from bot.webapp import auth
from bot.webapp.limits import TokenBuckets
from models import Deal, Group, Order
from services import coupons, my_orders, payments, people, teams, webapp
from services import deals as deal_service
from services import orders as order_service
from services.errors import DomainError
from services.locales import from_telegram, recipient_language
from services.money import STARS
from services.parsing import MAX_QUANTITY
from services.timezones import utcnow
from views import payment_texts
from views import webapp_texts as texts
from views.format import money, post_time, time_left

if TYPE_CHECKING:
    from bot.factory import App

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/app"
MAX_BODY = 4096
MAX_ID = 2**31 - 1
PHOTOS_KEPT = 64
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(Exception):
    """An answer other than 200: its status and sentence."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _person(user: Any) -> people.Person:
    return people.Person(
        id=user.id,
        first_name=user.first_name or "",
        last_name=user.last_name,
        username=user.username,
        is_bot=bool(user.is_bot),
        language_code=user.language_code,
    )


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info.get(name, "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not 0 < int(raw) <= MAX_ID:
        raise Refused(404, texts.not_found())
    return int(raw)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refused(400, texts.bad_request())
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise Refused(400, texts.bad_request())
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refused(400, texts.bad_request()) from None
    if not isinstance(body, dict):
        raise Refused(400, texts.bad_request())
    return body


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Refused(400, texts.bad_request())
    return value


class After:
    """What an endpoint does once its transaction has ended (a network call to Telegram
    must not hold the database)."""

    def __init__(self, run: Callable[[], Awaitable[Any]]) -> None:
        self.run = run


class WebApp:
    """The API's handlers, bound to the running App."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings
        self.buckets = TokenBuckets(app.settings.webapp_writes_per_minute)
        self.photos: OrderedDict[str, bytes] = OrderedDict()

    # ------------------------------------------------------------ plumbing

    def _language(self, caller: auth.Caller, stored: Any) -> str:
        language = recipient_language(stored, None, "")
        return (
            language or from_telegram(caller.user.language_code) or (self.settings.default_language)
        )

    def endpoint(
        self, run: Callable[..., Awaitable[Any]], *, write: bool = False, limited: bool = False
    ) -> Handler:
        """Authenticate, pick the language, run `run(request, session, caller, language)` in
        a read session or (writes) a unit of work, and answer its result as JSON."""

        async def handle(request: web.Request) -> web.StreamResponse:
            now = utcnow()
            caller = auth.authenticate(
                self.settings.token,
                request.headers.get("Authorization"),
                now,
                self.settings.webapp_auth_seconds,
            )
            i18n = self.app.i18n
            if caller is None:
                language = from_telegram(request.headers.get("Accept-Language", "")[:8])
                with i18n.context(), i18n.use_locale(language or self.settings.default_language):
                    return web.json_response({"error": texts.unauthorized()}, status=401)
            language = from_telegram(caller.user.language_code) or self.settings.default_language
            try:
                if (write or limited) and not self.buckets.take(caller.user.id):
                    with i18n.context(), i18n.use_locale(language):
                        raise Refused(429, texts.too_many())
                # a unit of work even for reads: checking rights may refresh a group's
                # administrators (as every update's transaction may)
                async with self.app.db.transaction() as session:
                    if write:
                        stored = await people.remember(session, _person(caller.user))
                    else:
                        stored = await people.get(session, caller.user.id)
                    language = self._language(caller, stored)
                    with i18n.context(), i18n.use_locale(language):
                        try:
                            result = await run(request, session, caller, language, now)
                        except DomainError as exc:
                            raise Refused(409, texts.refusal(exc)) from None
                        except Refused:
                            raise
                if isinstance(result, After):  # a call to Telegram, outside the transaction
                    with i18n.context(), i18n.use_locale(language):
                        result = await result.run()
                if isinstance(result, web.StreamResponse):
                    return result
                return web.json_response(result)
            except Refused as refused:
                with i18n.context(), i18n.use_locale(language):
                    return web.json_response({"error": refused.text}, status=refused.status)

        return handle

    async def _shop(self, session: AsyncSession, request: web.Request, caller: auth.Caller):
        code = request.match_info.get("code", "")
        try:
            return await webapp.shop(session, self.app.admins, code, caller.user.id)
        except webapp.NotInGroup:
            raise Refused(403, texts.refusal(webapp.NotInGroup(code))) from None

    # ------------------------------------------------------------ rendering

    def _deal(self, item: webapp.Item, group: Group, language: str, now: datetime) -> dict:
        deal = item.deal
        price = item.price
        nxt = deal_service.next_tier(deal, deal.total_qty)
        mine = item.mine
        holds = mine is not None and mine.status == "active" and mine.quantity > 0
        open_teams = [
            {
                "id": v.team.id,
                "members": v.team.members,
                "size": v.team.size,
                "names": [display_name(u) for _o, u in v.members],
            }
            for v in item.team_views
            if v.team.status == "open" and v.group.id == group.id
        ]
        left = (deal.closes_at - now).total_seconds()
        return {
            "id": deal.id,
            "code": deal.code,
            "title": deal.title,
            "photo": bool(deal.photo_file_id),
            "status": deal.status,
            "price": money(price, deal.currency, language),
            "unit_price": money(deal.unit_price, deal.currency, language),
            "tier_reached": price < deal.unit_price,
            "next_tier": (
                {"units": nxt[0], "price": money(nxt[1], deal.currency, language)} if nxt else None
            ),
            "total_qty": deal.total_qty,
            "participants": deal.participants,
            "min_kind": deal.min_kind,
            "min_value": deal.min_value,
            "missing": deal_service.missing_for_minimum(deal),
            "stock_left": deal.stock_left,
            "stock_total": deal.stock_total,
            "limit": min(deal.per_person_limit or MAX_QUANTITY, MAX_QUANTITY),
            "closes": post_time(deal.closes_at, group.timezone, language),
            "time_left": time_left(left) if left > 0 else "",
            "team": (
                {
                    "size": deal.team_size,
                    "price": money(deal.team_price or 0, deal.currency, language),
                    "only": deal.team_only,
                    "open": open_teams,
                }
                if teams.offers_teams(deal)
                else None
            ),
            "bargain": bool(deal.bargain_start_price) and deal.status == "open",
            "mine": (
                {
                    "order": mine.id,
                    "quantity": mine.quantity if holds else 0,
                    "status": mine.status,
                    "in_offer": mine.team_id is not None or mine.bargain_id is not None,
                    "paid": mine.paid_at is not None,
                }
                if mine is not None
                else None
            ),
        }

    # ------------------------------------------------------------ reads

    async def me(self, request, session, caller, language, now) -> dict:
        groups = await webapp.member_group_ids(session, self.app.admins, caller.user.id)
        shops = []
        for group in groups:
            if group.shop_code:
                shops.append({"code": group.shop_code, "title": group.title})
        return {
            "user": {"id": caller.user.id, "name": caller.user.first_name},
            "language": language,
            "labels": texts.labels(),
            "start": caller.start_param if webapp.valid_code(caller.start_param) else None,
            "shops": shops,
        }

    async def storefront(self, request, session, caller, language, now) -> dict:
        group, admin = await self._shop(session, request, caller)
        items = await webapp.storefront(session, group, caller.user.id)
        claimable = await coupons.claimable(session, [group.id], now)
        return {
            "group": {"code": group.shop_code, "title": group.title, "admin": admin},
            "deals": [self._deal(item, group, language, now) for item in items],
            "coupons": [{"id": c.id, "label": coupon_label(c, language)} for c in claimable],
        }

    async def deal_page(self, request, session, caller, language, now) -> dict:
        group, _admin = await self._shop(session, request, caller)
        page = await webapp.deal_page(
            session, self.app.admins, group, _id(request, "deal"), caller.user.id
        )
        deal = page.item.deal
        shown = self._deal(page.item, group, language, now)
        shown["description"] = deal.description
        shown["pickup_note"] = deal.pickup_note
        shown["tiers"] = [
            {"units": units, "price": money(price, deal.currency, language)}
            for units, price in deal_service.tiers_of(deal)
        ]
        shown["signups"] = [
            {"name": display_name(user), "quantity": order.quantity} for order, user in page.signups
        ]
        shown["manages"] = page.manages
        return shown

    async def deal_orders(self, request, session, caller, language, now) -> dict:
        group, _admin = await self._shop(session, request, caller)
        page = await webapp.deal_page(
            session, self.app.admins, group, _id(request, "deal"), caller.user.id
        )
        if not page.manages:
            raise Refused(403, texts.refusal(webapp.NotInGroup("")))
        deal = page.item.deal
        from services import owner_orders

        rows = await owner_orders.orders_with_users(session, deal.id)
        held = [(order, user) for order, user in rows if order.quantity > 0]
        return {
            "title": deal.title,
            "units": deal.total_qty,
            "people": deal.participants,
            "paid": money(sum(o.paid_amount or 0 for o, _u in held), deal.currency, language),
            "owed": money(sum(payments.owed(o) for o, _u in held), deal.currency, language),
            "orders": [
                {
                    "name": display_name(user),
                    "quantity": order.quantity,
                    "status": order.status,
                    "pickup": order.pickup_code,
                    "paid": money(order.paid_amount or 0, deal.currency, language),
                    "owed": money(payments.owed(order), deal.currency, language),
                }
                for order, user in held
            ],
        }

    async def photo(self, request, session, caller, language, now) -> web.StreamResponse:
        group, _admin = await self._shop(session, request, caller)
        deal = await webapp.posted_in(session, group, _id(request, "deal"))
        if not deal.photo_file_id:
            raise Refused(404, texts.not_found())
        file_id = deal.photo_file_id
        deal_id = deal.id
        return After(lambda: self._photo(deal_id, file_id))

    async def _photo(self, deal_id: int, file_id: str) -> web.StreamResponse:
        data = self.photos.get(file_id)
        if data is None:
            buffer = io.BytesIO()
            try:
                await self.app.bot.download(file_id, destination=buffer)
            except Exception as exc:
                log.warning("deal %s: its photo could not be fetched: %s", deal_id, exc)
                raise Refused(404, texts.not_found()) from None
            data = buffer.getvalue()
            self.photos[file_id] = data
            while len(self.photos) > PHOTOS_KEPT:
                self.photos.popitem(last=False)
        return web.Response(
            body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
        )

    async def orders(self, request, session, caller, language, now) -> dict:
        mine = await my_orders.of_member(session, caller.user.id, self.settings.default_timezone)
        options = {s.order.id: s for s in await coupons.switchable(session, caller.user.id, now)}
        shown = []
        for order, deal in mine.ordered:
            zone = mine.zones.get(order.id, self.settings.default_timezone)
            choice = options.get(order.id)
            shown.append(
                {
                    "id": order.id,
                    "deal": deal.code,
                    "title": deal.title,
                    "quantity": order.quantity,
                    "status": order.status,
                    "fulfilment": order.fulfilment,
                    "closes": post_time(deal.closes_at, zone, language),
                    "amount": (
                        money(order.amount, deal.currency, language)
                        if order.amount is not None
                        else money(
                            deal_service.price_at(deal, deal.total_qty) * order.quantity,
                            deal.currency,
                            language,
                        )
                    ),
                    "paid": (
                        money(order.paid_amount, deal.currency, language)
                        if order.paid_amount
                        else None
                    ),
                    "owed": (
                        money(payments.owed(order), deal.currency, language)
                        if payments.is_paid(deal) and payments.owed(order) > 0
                        else None
                    ),
                    "payable": _payable(order, deal),
                    "refund": _refund(mine.payments.get(order.id, [])),
                    "pickup": (
                        order.pickup_code if my_orders.pickup_pending(order, deal) else None
                    ),
                    "cancellable": my_orders.cancellable(order, deal)
                    and order.team_id is None
                    and order.bargain_id is None,
                    "coupons": (
                        [
                            {
                                "claim": claim.id,
                                "label": coupon_label(coupon, language)
                                + " (−"
                                + money(discount, deal.currency, language)
                                + ")",
                            }
                            for claim, coupon, discount in choice.options
                        ]
                        if choice is not None
                        else []
                    ),
                    "coupon": choice.current.id if choice and choice.current else None,
                }
            )
        return {"orders": shown}

    # ------------------------------------------------------------ writes

    async def order(self, request, session, caller, language, now) -> dict:
        body = await _body(request)
        action = body.get("action")
        if action not in order_service.ACTIONS:
            raise Refused(400, texts.bad_request())
        quantity = _int(body, "quantity", 0, MAX_QUANTITY) if action == "set" else 0
        group, _admin = await self._shop(session, request, caller)
        deal = await webapp.posted_in(session, group, _id(request, "deal"))
        change = await order_service.act(
            session,
            deal_id=deal.id,
            user_id=caller.user.id,
            action=action,
            quantity=quantity,
            group=group,
            now=now,
            via="webapp",
        )
        return {"quantity": change.new_quantity, "changed": change.changed}

    async def team(self, request, session, caller, language, now) -> dict:
        body = await _body(request)
        group, _admin = await self._shop(session, request, caller)
        deal = await webapp.posted_in(session, group, _id(request, "deal"))
        if body.get("action") == "start":
            joined = await teams.start(
                session, deal_id=deal.id, user_id=caller.user.id, group=group, now=now
            )
        elif body.get("action") == "join":
            team = await teams.get(session, _int(body, "team", 1, MAX_ID))
            if team.deal_id != deal.id or team.group_id != group.id:
                raise teams.TeamNotFound(team.id)
            joined = await teams.join(session, team=team, user_id=caller.user.id, now=now)
        else:
            raise Refused(400, texts.bad_request())
        return {"team": joined.team.id, "members": joined.team.members, "filled": joined.filled}

    async def claim(self, request, session, caller, language, now) -> dict:
        group, _admin = await self._shop(session, request, caller)
        made, coupon, _group = await coupons.claim(
            session, _id(request, "coupon"), caller.user.id, now, group_id=group.id
        )
        return {"claim": made.id, "label": coupon_label(coupon, language)}

    async def coupon(self, request, session, caller, language, now) -> dict:
        body = await _body(request)
        claim_id = _int(body, "claim", 0, MAX_ID)
        order = await coupons.switch(session, _id(request, "order"), caller.user.id, claim_id, now)
        return {"order": order.id, "owed": payments.owed(order)}

    async def invoice(self, request, session, caller, language, now) -> dict:
        found = await _own_order(session, _id(request, "order"), caller.user.id)
        if found is None:
            raise Refused(404, texts.not_found())
        order, deal = found
        if not _payable(order, deal):
            raise Refused(409, texts.no_payment())
        stars = deal.currency == STARS
        if not stars and not self.settings.provider_token:
            raise Refused(409, texts.no_payment())
        owed = payments.owed(order)
        zone = self.settings.default_timezone
        invoice = {
            "title": payment_texts.invoice_title(deal),
            "description": payment_texts.invoice_description(deal, order, owed, language, zone),
            "payload": payments.payload_of(order),
            "currency": deal.currency,
            "prices": [LabeledPrice(label=payment_texts.price_label(deal, order), amount=owed)],
            "provider_token": None if stars else self.settings.provider_token,
        }

        async def link() -> dict:
            return {"link": await self.app.bot.create_invoice_link(**invoice)}

        return After(link)


def _refund(paid: list[Any]) -> str | None:
    """The state of the order's refund, as /myorders names it (None: no refund)."""
    from services import payment_books
    from views.owner_orders import payment_state_label

    state = payment_books.refund_state(paid)
    if state in (payment_books.NONE, payment_books.PAID):
        return None
    return payment_state_label(state)


def _payable(order: Order, deal: Deal) -> bool:
    """What the chat's invoice would ask for (bot.payment_notices.invoice)."""
    return (
        payments.is_paid(deal)
        and payments.owed(order) > 0
        and order.status in ("active", "confirmed")
        and order.pay_by is not None
        and order.invoice_no > 0
    )


async def _own_order(session: AsyncSession, order_id: int, user_id: int):
    from services import notice_reads

    found = await notice_reads.order_with_deal(session, order_id)
    if found is None or found[0].user_id != user_id:
        return None
    return found


def coupon_label(coupon: Any, language: str) -> str:
    from views.coupon_texts import claim_label

    return claim_label(coupon, language)


async def _index(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def add_routes(web_app: web.Application, app: App) -> WebApp:
    """The Mini App's routes on the bot's aiohttp application."""
    api = WebApp(app)
    api_prefix = f"{PREFIX}/api"
    shop = f"{api_prefix}/shop/{{code}}"
    deal = f"{shop}/deals/{{deal}}"
    router = web_app.router
    router.add_get(f"{api_prefix}/me", api.endpoint(api.me))
    router.add_get(shop, api.endpoint(api.storefront))
    router.add_get(deal, api.endpoint(api.deal_page))
    router.add_get(f"{deal}/photo", api.endpoint(api.photo))
    router.add_get(f"{deal}/orders", api.endpoint(api.deal_orders))
    router.add_post(f"{deal}/order", api.endpoint(api.order, write=True))
    router.add_post(f"{deal}/team", api.endpoint(api.team, write=True))
    router.add_post(f"{shop}/coupons/{{coupon}}/claim", api.endpoint(api.claim, write=True))
    router.add_get(f"{api_prefix}/orders", api.endpoint(api.orders))
    router.add_post(f"{api_prefix}/orders/{{order}}/coupon", api.endpoint(api.coupon, write=True))
    router.add_post(
        f"{api_prefix}/orders/{{order}}/invoice", api.endpoint(api.invoice, limited=True)
    )
    router.add_get(f"{PREFIX}/", _index)
    router.add_static(f"{PREFIX}/static/", STATIC, append_version=False)
    return api
