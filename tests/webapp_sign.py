"""Signing a Mini App's initData as Telegram does (for tests): the data-check string of the
sorted `key=value` lines, HMAC-SHA256 with the key HMAC-SHA256("WebAppData", bot token)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode


def sign(
    token: str,
    user: dict,
    *,
    start_param: str | None = None,
    auth_date: int | None = None,
    **extra: str,
) -> str:
    fields = {
        "auth_date": str(auth_date if auth_date is not None else int(time.time())),
        "query_id": "AAHtest",
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
        **extra,
    }
    if start_param is not None:
        fields["start_param"] = start_param
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


def web_user(user_id: int, first_name: str, language: str = "en") -> dict:
    return {"id": user_id, "first_name": first_name, "language_code": language}
