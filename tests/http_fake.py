"""A fake Bot API *HTTP server* on 127.0.0.1, for running the real `python -m bot` process
against TELEGRAM_API_URL (as with a self-hosted Bot API server). It serves getUpdates from a
queue, records every call, and answers like Telegram."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

BOT = {"id": 700000001, "is_bot": True, "first_name": "Tuan", "username": "tuan_test_bot"}


class FakeBotApiServer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pending: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.message_id = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push(self, update: dict[str, Any]) -> None:
        self.pending.append(update)
        self.arrived.set()

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        form = await request.post()
        params: dict[str, Any] = {}
        for key, value in form.items():
            try:
                params[key] = json.loads(value) if isinstance(value, str) else value
            except ValueError:
                params[key] = value
        self.calls.append((method, params))
        return web.json_response({"ok": True, "result": await self.result(method, params)})

    async def result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
            if not self.pending and params.get("timeout"):
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), min(float(params["timeout"]), 1.0))
                except TimeoutError:
                    return []
            return self.pending[: int(params.get("limit") or 100)]
        if method in {"sendMessage", "sendPhoto", "sendDocument", "sendInvoice"}:
            self.message_id += 1
            chat_id = int(params["chat_id"])
            message = {
                "message_id": self.message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                "from": BOT,
                "text": params.get("text"),
            }
            if method == "sendInvoice":
                prices = params.get("prices") or []
                message.pop("text")
                message["invoice"] = {
                    "title": str(params.get("title") or ""),
                    "description": str(params.get("description") or ""),
                    "start_parameter": "",
                    "currency": str(params.get("currency") or ""),
                    "total_amount": sum(int(p.get("amount", 0)) for p in prices),
                }
            return message
        if method == "getChatAdministrators":
            return []
        if method == "createInvoiceLink":
            return f"https://t.me/$invoice-{params.get('payload')}"
        return True  # refundStarPayment, answerCallbackQuery, answerPreCheckoutQuery…

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
