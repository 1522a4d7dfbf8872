"""Settings, read from the environment and an optional `.env` file (pydantic-settings)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.locales import SUPPORTED_LANGUAGES
from services.money import is_known_currency

TOKEN_RE = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{30,}$")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/tuan.db"
TELEGRAM_API_DEFAULT = "https://api.telegram.org"


class Mode(StrEnum):
    polling = "polling"
    webhook = "webhook"


class DatabaseSettings(BaseSettings):
    """What `python -m bot migrate` needs: the database only (no token)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    data_dir: str = "./data"


class Settings(DatabaseSettings):
    """Every setting is listed in the README's configuration table."""

    bot_token: SecretStr
    telegram_api_url: str = TELEGRAM_API_DEFAULT
    mode: Mode = Mode.polling
    webhook_url: str | None = None
    webhook_path: str = "/webhook"
    webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    redis_url: str | None = None
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    default_timezone: str = "Asia/Shanghai"
    default_language: str = "en"
    default_currency: str = "CNY"
    log_level: str = "INFO"
    admin_cache_seconds: int = Field(default=600, ge=0)
    activity_flush_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Limits of the sender (bot/sender.py), below Telegram's flood limits.
    send_chat_interval: float = Field(default=1.0, gt=0)
    send_group_per_minute: int = Field(default=20, gt=0)
    send_global_per_second: int = Field(default=30, gt=0)
    # The outbox (bot/outbox.py): how long a claimed row is held (renewed while sending)
    # and how often due rows are looked for besides the wake-up after each commit.
    outbox_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    outbox_poll_seconds: float = Field(default=5.0, gt=0, le=600)
    # How many times an update that fails for a transient reason is tried before it is set
    # aside (bot/runner.py, services/failures.py).
    update_attempts: int = Field(default=3, ge=1, le=20)
    # Payments (services.payments): the provider token from @BotFather's Payments (card
    # payments are offered only when it is set); Telegram Stars for digital items; the
    # /terms and /paysupport texts (a group's own, set in /settings, come first).
    payment_provider_token: SecretStr | None = None
    stars_payments: bool = True
    terms_text: str = ""
    paysupport_text: str = ""
    # The Mini App storefront (bot/webapp): its public https address (the bot's aiohttp
    # server serves it at /app/ and its API at /app/api/, in both modes), the app's short
    # name registered in @BotFather (t.me/<bot>/<short name>), how old initData may be,
    # and each person's writes per minute.
    webapp_url: str | None = None
    webapp_short_name: str | None = None
    webapp_auth_seconds: int = Field(default=86400, ge=60, le=7 * 86400)
    webapp_writes_per_minute: int = Field(default=30, ge=1, le=600)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not TOKEN_RE.match(value.get_secret_value().strip()):
            raise ValueError(
                "BOT_TOKEN looks malformed (expected the form 123456789:AA... from @BotFather)"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError as exc:
                raise ValueError(
                    "ADMIN_IDS must be numeric Telegram user ids, e.g. 12345,67890"
                ) from exc
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"DEFAULT_TIMEZONE {value!r} is not an IANA timezone, e.g. Asia/Shanghai"
            ) from exc
        return value

    @field_validator("default_language")
    @classmethod
    def _lang(cls, value: str) -> str:
        if value not in SUPPORTED_LANGUAGES:
            raise ValueError(f"DEFAULT_LANGUAGE must be one of {', '.join(SUPPORTED_LANGUAGES)}")
        return value

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        value = value.strip().upper()
        if not is_known_currency(value):
            raise ValueError("DEFAULT_CURRENCY must be an ISO 4217 code, e.g. CNY, USD, EUR")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @field_validator("webapp_short_name")
    @classmethod
    def _short_name(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not re.match(r"^[A-Za-z0-9_]{3,30}$", value):
            raise ValueError("WEBAPP_SHORT_NAME must be 3-30 characters of A-Z, a-z, 0-9 and _")
        return value

    @field_validator("telegram_api_url", "webhook_url", "webapp_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _webhook_needs(self) -> Settings:
        if self.mode is Mode.webhook:
            if not self.webhook_url:
                raise ValueError("MODE=webhook needs WEBHOOK_URL (the public https address)")
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if not re.match(r"^[A-Za-z0-9_-]{16,256}$", secret):
                raise ValueError(
                    "MODE=webhook refuses to start without WEBHOOK_SECRET "
                    "(16-256 characters of A-Z, a-z, 0-9, _ and -)"
                )
        return self

    @property
    def shop_links(self) -> bool:
        """Deal posts carry a 🛍 Shop button (the Mini App is served and registered)."""
        return bool(self.webapp_url and self.webapp_short_name)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def token(self) -> str:
        return self.bot_token.get_secret_value()

    @property
    def provider_token(self) -> str:
        token = self.payment_provider_token
        return token.get_secret_value().strip() if token is not None else ""

    @property
    def pay_methods(self) -> tuple[str, ...]:
        """The ways members can pay that this deployment offers (services.payments.METHODS)."""
        methods = ["cash"]
        if self.provider_token:
            methods.append("card")
        if self.stars_payments:
            methods.append("stars")
        return tuple(methods)


def describe_error(exc: Exception) -> str:
    """One line for a settings error (no traceback, no secret values)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            field = ".".join(str(x) for x in err.get("loc", ())) or "settings"
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "missing":
                msg = "is required (set it in the environment or in .env)"
            # Our validators already name the variable ("BOT_TOKEN looks malformed ...").
            named = field == "settings" or msg.startswith(field.upper())
            parts.append(msg if named else f"{field.upper()} {msg}")
        return "configuration error: " + "; ".join(parts)
    return f"configuration error: {exc}"
