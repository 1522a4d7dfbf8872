"""The README's run command for real: `python -m bot` as a process, polling a Bot API server
given by TELEGRAM_API_URL, answers /start, and stops cleanly on SIGTERM. It migrates the
database in a child process first: Alembic is never imported by the running bot."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from tests.conftest import TOKEN
from tests.http_fake import FakeBotApiServer

ROOT = Path(__file__).resolve().parent.parent


def start_update(update_id: int, user_id: int, text: str = "/start") -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Ada"},
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": "Ada",
                "language_code": "zh-hans",
            },
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    }


async def wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_bot_process_polls_custom_api_and_answers_start(tmp_path: Path) -> None:
    server = FakeBotApiServer(TOKEN)
    await server.start()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'tuan.db'}",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "bot.log"
    log = log_path.open("wb")
    # -X importtime: the bot process logs every module it imports (its migration child not)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    try:
        assert await wait_for(lambda: server.called("getUpdates")), "the bot never polled"
        server.push(start_update(1, 1001))
        assert await wait_for(lambda: server.called("sendMessage")), "no answer to /start"
        reply = server.called("sendMessage")[0]
        assert reply["chat_id"] == 1001
        assert "团" in reply["text"] and "你好" in reply["text"]  # Telegram language zh-hans
        assert server.called("setMyCommands"), "command menu not set"
        assert (tmp_path / "data" / "tuan.db").exists()
        assert (tmp_path / "data" / "heartbeat").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            raise
        await server.stop()
    err = log_path.read_text(errors="replace")
    assert proc.returncode == 0, err[-2000:]
    # migrated by the child step, which the bot waited for; alembic never loaded in the bot
    assert "tuan: database is up to date" in err
    with sqlite3.connect(tmp_path / "data" / "tuan.db") as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in err.splitlines()
        if line.startswith("import time:")
    }
    assert "aiogram" in imported and "sqlalchemy" in imported  # the log is the bot's imports
    unwanted = {"alembic", "mako", "openpyxl", "matplotlib"}
    assert not imported & unwanted, imported & unwanted
    # the processed batch was confirmed before exiting: the last getUpdates carries offset 2
    assert server.called("getUpdates")[-1].get("offset") == 2
