"""Configuration: the CLI's one-line errors, parsing and validation of every setting,
TELEGRAM_API_URL reaching the Bot, and the `migrate` / `healthcheck` commands as processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import TELEGRAM_API_DEFAULT, DatabaseSettings, Mode, Settings, describe_error
from bot.telegram import make_bot
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parent.parent
# Every variable the settings read; none may leak from the developer's shell into a test.
SETTINGS_VARS = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)


def run_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot ...` in `cwd` with only the variables given (plus PATH/PYTHONPATH)."""
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "HOME": str(cwd),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings(**values) -> Settings:
    return Settings(_env_file=None, **{"bot_token": TOKEN, **values})


def error_of(**values) -> str:
    with pytest.raises(ValidationError) as info:
        settings(**values)
    return describe_error(info.value)


def assert_one_line(message: str) -> None:
    assert message.startswith("configuration error: ")
    assert "\n" not in message and "\r" not in message
    assert "Traceback" not in message


# --------------------------------------------------------------------------- the CLI


def test_run_without_token_prints_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "BOT_TOKEN" in lines[0] and "required" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_run_with_malformed_token_prints_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, BOT_TOKEN="abc")
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "BOT_TOKEN" in lines[0] and "malformed" in lines[0]
    assert lines[0].count("BOT_TOKEN") == 1  # named once, not "BOT_TOKEN BOT_TOKEN ..."
    assert "abc" not in lines[0].replace("BotFather", "")  # the value is not echoed
    assert "Traceback" not in result.stderr


def test_run_reads_dot_env_in_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOT_TOKEN=abc\n", encoding="utf-8")
    result = run_cli(tmp_path)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    # The token came from .env: it is malformed, not missing.
    assert "malformed" in lines[0] and "required" not in lines[0]


def test_migrate_creates_tables_without_token(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "tuan.db"  # the directory does not exist yet
    result = run_cli(tmp_path, "migrate", DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(database) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"users", "groups", "group_admins", "memberships", "processed_updates"} <= tables
    assert {"fsm_states", "alembic_version"} <= tables
    assert len(version) == 1


def test_healthcheck_follows_the_heartbeat(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {"DATA_DIR": str(data), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hc.db'}"}

    missing = run_cli(tmp_path, "healthcheck", **env)
    assert missing.returncode == 1
    assert "heartbeat" in missing.stderr

    beat = data / "heartbeat"
    beat.write_text(str(time.time()))
    fresh = run_cli(tmp_path, "healthcheck", **env)
    assert fresh.returncode == 0, fresh.stderr

    ten_minutes_ago = time.time() - 600
    os.utime(beat, (ten_minutes_ago, ten_minutes_ago))
    stale = run_cli(tmp_path, "healthcheck", **env)
    assert stale.returncode == 1
    assert "old" in stale.stderr
    assert len(stale.stderr.splitlines()) == 1


def test_healthcheck_fails_when_database_is_unreachable(tmp_path: Path) -> None:
    (tmp_path / "heartbeat").write_text("")
    result = run_cli(
        tmp_path,
        "healthcheck",
        DATA_DIR=str(tmp_path),
        DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none",  # nothing listens on 1
    )
    assert result.returncode == 1
    assert "database unreachable" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- parsing


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        f"BOT_TOKEN={TOKEN}\nADMIN_IDS=7, 8\nDEFAULT_CURRENCY=usd\nMODE=polling\n",
        encoding="utf-8",
    )
    loaded = Settings(_env_file=env_file)
    assert loaded.token == TOKEN
    assert loaded.admin_ids == frozenset({7, 8})
    assert loaded.default_currency == "USD"


def test_environment_overrides_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"BOT_TOKEN={TOKEN}\nDEFAULT_LANGUAGE=en\n", encoding="utf-8")
    monkeypatch.setenv("DEFAULT_LANGUAGE", "zh_Hans")
    assert Settings(_env_file=env_file).default_language == "zh_Hans"


def test_missing_token_in_process() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    message = describe_error(info.value)
    assert_one_line(message)
    assert "BOT_TOKEN is required" in message


def test_token_whitespace_is_stripped() -> None:
    assert settings(bot_token=f"  {TOKEN}\n").token == TOKEN


@pytest.mark.parametrize(
    "token",
    ["abc", "123456789:short", "notdigits:AAHfakeTokenForTestsOnly_abcdefghijkl", ""],
)
def test_malformed_tokens_are_refused_without_echoing_them(token: str) -> None:
    message = error_of(bot_token=token)
    assert_one_line(message)
    assert "BOT_TOKEN" in message and "malformed" in message
    if len(token) > 3:
        assert token not in message


def test_admin_ids_from_string() -> None:
    assert settings(admin_ids="1, 2 3").admin_ids == frozenset({1, 2, 3})
    assert settings(admin_ids="").admin_ids == frozenset()
    assert settings(admin_ids=" 42 ").admin_ids == frozenset({42})


def test_admin_ids_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A comma list in the environment is not JSON: it must not be decoded as one.
    monkeypatch.setenv("ADMIN_IDS", "1, 2 3,,4")
    assert Settings(_env_file=None, bot_token=TOKEN).admin_ids == frozenset({1, 2, 3, 4})


@pytest.mark.parametrize("value", ["1, two", "abc", "1;2", "0x10"])
def test_garbage_admin_ids_refused(value: str) -> None:
    message = error_of(admin_ids=value)
    assert_one_line(message)
    assert "ADMIN_IDS" in message and "numeric" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("default_timezone", "Mars/Base", "DEFAULT_TIMEZONE"),
        ("default_timezone", "", "DEFAULT_TIMEZONE"),
        ("default_currency", "XY1", "DEFAULT_CURRENCY"),
        ("default_currency", "ZZZ", "DEFAULT_CURRENCY"),
        ("default_language", "xx", "DEFAULT_LANGUAGE"),
        ("default_language", "zh", "DEFAULT_LANGUAGE"),
        ("log_level", "LOUD", "LOG_LEVEL"),
        ("telegram_api_url", "ftp://example.org", "TELEGRAM_API_URL"),
        ("webhook_port", 0, "WEBHOOK_PORT"),
        ("send_chat_interval", 0, "SEND_CHAT_INTERVAL"),
        ("send_chat_interval", -1.5, "SEND_CHAT_INTERVAL"),
        ("send_group_per_minute", 0, "SEND_GROUP_PER_MINUTE"),
        ("send_global_per_second", -3, "SEND_GLOBAL_PER_SECOND"),
    ],
)
def test_bad_values_refused_with_a_clear_message(field: str, value, expected: str) -> None:
    message = error_of(**{field: value})
    assert_one_line(message)
    assert expected in message
    assert message.count(expected) == 1  # the variable is named once


def test_error_messages_say_what_is_expected() -> None:
    assert "IANA" in error_of(default_timezone="Mars/Base")
    assert "Mars/Base" in error_of(default_timezone="Mars/Base")
    assert "ISO 4217" in error_of(default_currency="XY1")
    assert "en, zh_Hans" in error_of(default_language="xx")


def test_several_errors_on_one_line() -> None:
    message = error_of(default_currency="XY1", default_language="xx")
    assert_one_line(message)
    assert "DEFAULT_CURRENCY" in message and "DEFAULT_LANGUAGE" in message


def test_valid_values_are_normalised() -> None:
    s = settings(
        default_currency=" eur ",
        default_timezone="Europe/Berlin",
        default_language="zh_Hans",
        log_level="debug",
    )
    assert s.default_currency == "EUR"
    assert s.default_timezone == "Europe/Berlin"
    assert s.default_language == "zh_Hans"
    assert s.log_level == "DEBUG"


def test_telegram_api_url_trailing_slash_stripped() -> None:
    assert settings(telegram_api_url="http://127.0.0.1:8081/").telegram_api_url == (
        "http://127.0.0.1:8081"
    )
    assert settings().telegram_api_url == TELEGRAM_API_DEFAULT == "https://api.telegram.org"


def test_webhook_needs_url() -> None:
    message = error_of(mode="webhook", webhook_secret="s" * 32)
    assert_one_line(message)
    assert "WEBHOOK_URL" in message


@pytest.mark.parametrize("secret", [None, "", "a" * 15, "has spaces in it!!", "x" * 257])
def test_webhook_needs_a_proper_secret(secret: str | None) -> None:
    values = {"mode": "webhook", "webhook_url": "https://bot.example.org/"}
    if secret is not None:
        values["webhook_secret"] = secret
    message = error_of(**values)
    assert_one_line(message)
    assert "WEBHOOK_SECRET" in message
    if secret:
        assert secret not in message  # the secret is never printed


def test_webhook_accepted_with_url_and_secret() -> None:
    s = settings(mode="webhook", webhook_url="https://bot.example.org/", webhook_secret="a" * 16)
    assert s.mode is Mode.webhook
    assert s.webhook_url == "https://bot.example.org"
    assert s.webhook_secret is not None and s.webhook_secret.get_secret_value() == "a" * 16


def test_polling_does_not_need_webhook_settings() -> None:
    assert settings(mode="polling").webhook_secret is None


def test_describe_error_of_other_exceptions() -> None:
    assert describe_error(RuntimeError("boom")) == "configuration error: boom"


def test_database_settings_need_no_token() -> None:
    s = DatabaseSettings(_env_file=None, database_url="sqlite+aiosqlite:///x.db")
    assert s.database_url == "sqlite+aiosqlite:///x.db"
    assert not hasattr(s, "bot_token")


def test_is_sqlite() -> None:
    assert settings(database_url="sqlite+aiosqlite:///x.db").is_sqlite
    assert not settings(database_url="postgresql+asyncpg://u@h/db").is_sqlite


# --------------------------------------------------------------------------- TELEGRAM_API_URL


async def test_make_bot_uses_custom_api_server() -> None:
    bot = make_bot(settings(telegram_api_url="http://127.0.0.1:8081/"))
    try:
        url = bot.session.api.api_url(token=TOKEN, method="getMe")
        assert url.startswith("http://127.0.0.1:8081/bot")
        assert url == f"http://127.0.0.1:8081/bot{TOKEN}/getMe"
        assert "api.telegram.org" not in bot.session.api.file_url(token=TOKEN, path="x")
    finally:
        await bot.session.close()


async def test_make_bot_defaults_to_telegram() -> None:
    bot = make_bot(settings())
    try:
        url = bot.session.api.api_url(token=TOKEN, method="getMe")
        assert url == f"https://api.telegram.org/bot{TOKEN}/getMe"
        assert bot.default.parse_mode == "HTML"
    finally:
        await bot.session.close()


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in readme.splitlines()
        if line.startswith("| `")
    }
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in rows]
    assert missing == []
