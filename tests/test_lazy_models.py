"""bot/lazy_models.py: aiogram's models are built on first use, not at import.

The first tests fail loudly when a new aiogram or pydantic changes what the hook relies on
(then read bot/lazy_models.py again: maybe the hook is no longer needed, maybe it must change).
The others check, in a fresh interpreter, that nothing is built by the import and that a real
Update (forward references included) is still validated, serialised and dispatched."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import aiogram.methods
import aiogram.types
from aiogram.methods.base import TelegramMethod
from aiogram.types.base import TelegramObject
from pydantic import BaseModel
from pydantic._internal._mock_val_ser import MockValSer

from bot import lazy_models

ROOT = Path(__file__).resolve().parent.parent


def type_models() -> list[type[TelegramObject]]:
    values = (getattr(aiogram.types, name) for name in aiogram.types.__all__)
    return [v for v in values if isinstance(v, type) and issubclass(v, TelegramObject)]


def method_models() -> list[type[TelegramMethod]]:
    values = (getattr(aiogram.methods, name) for name in aiogram.methods.__all__)
    return [
        v
        for v in values
        if isinstance(v, type) and issubclass(v, TelegramMethod) and v is not TelegramMethod
    ]


# --- what the hook relies on -------------------------------------------------------------


def test_aiogram_still_rebuilds_every_type_in_the_loop_the_hook_defers():
    source = inspect.getsource(aiogram.types)
    assert "for _entity_name in __all__:" in source
    assert "_entity.model_rebuild(_types_namespace=_types_namespace)" in source, (
        "aiogram changed the model_rebuild loop at the end of aiogram/types/__init__.py: "
        "check bot/lazy_models.py"
    )


def test_aiogram_classes_the_hook_patches_are_where_it_expects():
    assert TelegramObject.__module__ == lazy_models.TYPES_BASE
    assert TelegramMethod.__module__ == lazy_models.METHODS_BASE
    # the types defer their build themselves; only aiogram's rebuild loop builds them
    assert TelegramObject.model_config.get("defer_build") is True
    # no type has its own model_rebuild (it would bypass the stub), the stub is gone again
    assert "model_rebuild" not in vars(TelegramObject)
    assert not [t.__name__ for t in type_models() if "model_rebuild" in vars(t)]
    assert all(issubclass(m, BaseModel) for m in method_models())


def test_pydantic_still_merges_the_parent_namespace_into_a_lazy_rebuild():
    source = inspect.getsource(BaseModel.model_rebuild)
    assert "__pydantic_parent_namespace__" in source
    assert "_types_namespace" in inspect.signature(BaseModel.model_rebuild).parameters
    assert "attempt_rebuild" in inspect.signature(MockValSer).parameters


def test_the_hook_is_active_in_the_test_process():
    assert lazy_models.State.installed
    assert lazy_models.State.deferred_methods
    assert TelegramMethod.model_config["defer_build"] is True
    rebuilt = {t.__name__ for t in type_models()}
    assert set(lazy_models.State.deferred_types) == rebuilt  # every call of the loop deferred
    namespace = lazy_models.State.namespace
    assert namespace is not None and namespace["Message"] is aiogram.types.Message
    assert aiogram.types.Message.__pydantic_parent_namespace__ is namespace


# --- behaviour, in a fresh interpreter ---------------------------------------------------

PROBE = r"""
import asyncio, json, sys
import bot  # installs the hook, as `python -m bot` does
import aiogram.methods, aiogram.types
from aiogram import Bot, Dispatcher, F, Router
from aiogram.methods import SendMessage
from aiogram.methods.base import Response, TelegramMethod
from aiogram.types import Message, Update
from aiogram.types.base import TelegramObject

def built(module, base):
    values = [getattr(module, n) for n in module.__all__]
    models = [v for v in values if isinstance(v, type) and issubclass(v, base) and v is not base]
    return sum(1 for m in models if m.__pydantic_complete__), len(models)

out = {
    "types": built(aiogram.types, TelegramObject),
    "methods": built(aiogram.methods, TelegramMethod),
}
chat = {"id": -100123, "type": "supergroup", "title": "G"}
user = {"id": 42, "is_bot": False, "first_name": "Ann"}
raw = {
    "update_id": 7,
    "message": {
        "message_id": 11, "date": 1700000000, "chat": chat, "from": user, "text": "hello",
        "reply_to_message": {
            "message_id": 10, "date": 1699999999, "chat": chat, "from": user, "text": "first",
            "reply_markup": {"inline_keyboard": [[{"text": "Join", "callback_data": "j:1"}]]},
        },
    },
}
seen = []
router = Router()

@router.message(F.text)
async def on_text(message: Message) -> None:
    seen.append(message)

dp = Dispatcher()
dp.include_router(router)

async def main():
    api = Bot("123456789:AAHfakeTokenForTestsOnly_abcdefghijkl")
    try:
        await dp.feed_raw_update(api, raw)
    finally:
        await api.session.close()

asyncio.run(main())
message = seen[0]
out["reply_type"] = type(message.reply_to_message).__name__
out["reply_text"] = message.reply_to_message.text
out["button"] = message.reply_to_message.reply_markup.inline_keyboard[0][0].callback_data
update = Update.model_validate(raw)
out["round_trip"] = update.model_dump(mode="json", by_alias=True, exclude_none=True) == raw
out["update_built"] = Update.__pydantic_complete__
keyboard = {"inline_keyboard": [[{"text": "a", "url": "https://t.me/x"}]]}
send = SendMessage(chat_id=1, text="hi", reply_markup=keyboard)
out["send_markup"] = type(send.reply_markup).__name__
response = Response[Message].model_validate({"ok": True, "result": raw["message"]})
out["response_reply"] = type(response.result.reply_to_message).__name__
try:
    Update.model_validate({"update_id": "x"})
except Exception as exc:
    out["invalid"] = type(exc).__name__
out["after"] = built(aiogram.types, TelegramObject)
print(json.dumps(out))
"""


def probe(**env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_model_is_built_at_import_and_a_real_update_still_validates_and_dispatches():
    out = probe()
    built_types, all_types = out["types"]
    built_methods, all_methods = out["methods"]
    assert all_types > 200 and all_methods > 100
    assert built_types == 0, "aiogram types were built at import"
    assert built_methods == 0, "aiogram methods were built at import"
    # the Dispatcher validated the Update, forward references resolved
    assert out["reply_type"] == "Message" and out["reply_text"] == "first"
    assert out["button"] == "j:1"
    assert out["round_trip"] and out["update_built"]
    assert out["send_markup"] == "InlineKeyboardMarkup"
    assert out["response_reply"] == "Message"
    assert out["invalid"] == "ValidationError"
    # only what was used got built
    assert 0 < out["after"][0] < all_types


def test_switched_off_aiogram_builds_everything_at_import_as_before():
    out = probe(TUAN_EAGER_MODELS="1")
    built_types, all_types = out["types"]
    assert built_types == all_types
    assert out["reply_type"] == "Message" and out["round_trip"]
