"""`python -m bench.bare_bot`: a bare aiogram bot, the memory benchmark's floor.

One Dispatcher with one router and one message handler that does nothing, polling the Bot
API server given by TELEGRAM_API_URL with BOT_TOKEN, until SIGTERM. It imports nothing of
Tuan's but `bot/lazy_models.py` (through `bench/__init__` and `bot/__init__`, which import
nothing else), so it builds aiogram's models the way the bot does; with TUAN_EAGER_MODELS=1 it
is stock aiogram.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

router = Router()


@router.message()
async def any_message(message: Message) -> None:
    return None


async def main() -> None:
    session = AiohttpSession()
    session.api = TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"])
    bot = Bot(token=os.environ["BOT_TOKEN"], session=session)
    dp = Dispatcher()
    dp.include_router(router)
    await dp.start_polling(bot, handle_signals=True, close_bot_session=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
