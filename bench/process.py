"""The real bot as a subprocess (`python -m bot run`) against the HTTP fake Bot API server of
the test suite (tests/http_fake.py), for the crash and memory benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import TOKEN

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench_secret_0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bot_env(db_url: str, api_url: str, data_dir: str | Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api_url,
        "DATABASE_URL": db_url,
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def webhook_env(port: int) -> dict[str, str]:
    return {
        "MODE": "webhook",
        "WEBHOOK_URL": "https://bench.example.org",
        "WEBHOOK_PATH": "/webhook",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
    }


class BotProcess:
    """`python -m bot run` (`command`: what follows `python -m`) with the given environment;
    stderr goes to a log file."""

    command: tuple[str, ...] = ("bot", "run")

    def __init__(self, env: dict[str, str], cwd: str | Path, log_path: str | Path) -> None:
        self.env = env
        self.cwd = str(cwd)
        self.log_path = Path(log_path)
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                *self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        finally:
            log.close()
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()
            return None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


async def wait_until(predicate: Any, seconds: float, what: str, proc: BotProcess) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        if not proc.alive():
            raise RuntimeError(f"the bot exited while waiting for {what}:\n{proc.tail()}")
        await asyncio.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}:\n{proc.tail()}")


async def healthy(http: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            return response.status == 200
    except (aiohttp.ClientError, OSError):
        return False


def read_rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)
