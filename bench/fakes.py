"""A fake Bot API that enforces Telegram's sending limits, for the broadcast benchmark and
its test: sliding windows over the arrival times of sending requests; a request over a limit
is refused with 429 and the `retry_after` that would have let it through."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from typing import Any

from aiogram import Bot
from aiogram import methods as m
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod

from tests.fake_api import FakeTelegram

SENDING = (
    m.SendMessage,
    m.SendPhoto,
    m.SendDocument,
    m.CopyMessage,
    m.ForwardMessage,
    m.EditMessageText,
    m.EditMessageCaption,
    m.EditMessageReplyMarkup,
)


class LimitedTelegram(FakeTelegram):
    """Like FakeTelegram, but at most `global_limit` sends per `global_window` seconds,
    `group_limit` per `group_window` per group chat and one per `chat_interval` per chat.
    `scale` > 1 shrinks every window (same limits, faster time) for quick tests."""

    def __init__(
        self,
        *,
        global_limit: int = 30,
        global_window: float = 1.0,
        group_limit: int = 20,
        group_window: float = 60.0,
        chat_interval: float = 1.0,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.global_limit = global_limit
        self.global_window = global_window / scale
        self.group_limit = group_limit
        self.group_window = group_window / scale
        self.chat_interval = chat_interval / scale
        self.too_many = 0  # 429s returned
        self.accepted = 0
        self._global: deque[float] = deque()
        self._groups: dict[int, deque[float]] = defaultdict(deque)
        self._last: dict[int, float] = {}

    @staticmethod
    def _wait(window: deque[float], limit: int, length: float, now: float) -> float:
        while window and window[0] <= now - length:
            window.popleft()
        if len(window) < limit:
            return 0.0
        return window[len(window) - limit] + length - now

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        chat_id = getattr(method, "chat_id", None)
        if isinstance(method, SENDING) and isinstance(chat_id, int):
            now = time.monotonic()
            wait = self._wait(self._global, self.global_limit, self.global_window, now)
            if chat_id < 0:
                window = self._groups[chat_id]
                wait = max(wait, self._wait(window, self.group_limit, self.group_window, now))
            last = self._last.get(chat_id)
            if last is not None:
                wait = max(wait, last + self.chat_interval - now)
            if wait > 0:
                self.too_many += 1
                self.requests.append(method)
                self.times.append(now)
                raise TelegramRetryAfter(
                    method=method,
                    message="Too Many Requests: retry after",
                    retry_after=max(math.ceil(wait), 1),
                )
            self._global.append(now)
            if chat_id < 0:
                self._groups[chat_id].append(now)
            self._last[chat_id] = now
            self.accepted += 1
        return await super().make_request(bot, method, timeout)
