"""Build aiogram's pydantic models on first use instead of at import (saves about 100 MB).

Why: aiogram 3 declares its Bot API types with `defer_build=True`, but the loop at the end of
`aiogram/types/__init__.py` then calls `model_rebuild(_types_namespace=...)` on every type, and
`model_rebuild` ignores `defer_build`: all validators and serializers (several hundred models,
each with the whole tree of types it nests) are built at `import aiogram`. The method classes
(`aiogram/methods`, `TelegramMethod`) do not set `defer_build` at all (aiogram issue #1513).
Neither aiogram nor pydantic has a setting for this, so this module is a small import hook.

What it does, installed by `bot/__init__.py` (so `python -m bot`, the tests and the benches,
which all import `bot` first, get it) before aiogram is imported:

1. When `aiogram.types.base` has run, `TelegramObject.model_rebuild` is replaced, for the
   time `aiogram.types` is being imported only, by a stub that records what the loop passes:
   the namespace becomes the class's `__pydantic_parent_namespace__` (pydantic merges it into
   every later rebuild, so the lazy build on first use resolves the same forward references
   the loop would have, e.g. `Message.reply_to_message: Message | None`), and its names are
   added (where missing) to the globals of the type's module, so that a model nesting the type
   (`Response[Message]`, `SendMessage.reply_markup`, a model of ours) resolves them too.
   When `aiogram.types` has finished importing, the stub is removed: an explicit
   `model_rebuild()` later is pydantic's own again.
2. When `aiogram.methods.base` has run, `TelegramMethod.model_config["defer_build"]` is set
   before the method classes are defined, so they are built on first use as well (and get
   the same namespace as the types when `aiogram.methods` has finished importing).

pydantic builds a deferred model the first time it is needed (validation, serialization,
schema); that is its documented `defer_build` behaviour, nothing here is involved then.
tests/test_lazy_models.py fails loudly when aiogram or pydantic change what this relies on
(the loop's call, the class attributes, `__pydantic_parent_namespace__` in `model_rebuild`).
Set TUAN_EAGER_MODELS=1 to switch the hook off (aiogram's own behaviour, for comparisons).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

TYPES = "aiogram.types"
TYPES_BASE = "aiogram.types.base"
METHODS = "aiogram.methods"
METHODS_BASE = "aiogram.methods.base"


class State:
    """What the hook did, for the tests and the report."""

    installed = False
    deferred_types: list[str] = []  # one process-wide record
    deferred_methods = False
    namespace: dict[str, Any] | None = None


def _defer_rebuild(cls: Any, **kwargs: Any) -> bool | None:
    """Stands in for `TelegramObject.model_rebuild` while `aiogram.types` is imported."""
    namespace = kwargs.get("_types_namespace")
    if namespace is None or kwargs.get("force"):
        return _real_rebuild(cls, **kwargs)  # not the import loop's call: build it
    State.namespace = namespace
    _adopt(cls, namespace)
    State.deferred_types.append(cls.__name__)
    return None


def _real_rebuild(cls: Any, **kwargs: Any) -> bool | None:
    from pydantic import BaseModel

    return BaseModel.model_rebuild.__func__(cls, **kwargs)  # type: ignore[attr-defined]


def _adopt(cls: Any, namespace: dict[str, Any]) -> None:
    """Give a deferred model the namespace its forward references are resolved in."""
    cls.__pydantic_parent_namespace__ = namespace
    module = sys.modules.get(cls.__module__)
    if module is not None:
        module_globals = vars(module)
        for name, value in namespace.items():
            module_globals.setdefault(name, value)


def _after_types_base(module: ModuleType) -> None:
    module.TelegramObject.model_rebuild = classmethod(_defer_rebuild)


def _after_types(module: ModuleType) -> None:
    base = sys.modules.get(TYPES_BASE)
    if base is not None and "model_rebuild" in vars(base.TelegramObject):
        del base.TelegramObject.model_rebuild


def _after_methods_base(module: ModuleType) -> None:
    module.TelegramMethod.model_config["defer_build"] = True
    State.deferred_methods = True


def _after_methods(module: ModuleType) -> None:
    namespace = State.namespace
    if namespace is None:
        return
    base = module.TelegramMethod
    for name in module.__all__:
        value = getattr(module, name, None)
        if isinstance(value, type) and issubclass(value, base) and value is not base:
            _adopt(value, namespace)


HOOKS: dict[str, Callable[[ModuleType], None]] = {
    TYPES_BASE: _after_types_base,
    TYPES: _after_types,
    METHODS_BASE: _after_methods_base,
    METHODS: _after_methods,
}


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, after: Callable[[ModuleType], None]) -> None:
        self.loader = loader
        self.after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if module.__name__ != TYPES:
            self.loader.exec_module(module)
            self.after(module)
            return
        try:
            self.loader.exec_module(module)
        finally:  # the stub goes even when the import failed
            self.after(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        after = HOOKS.get(fullname)
        if after is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, after)
        return spec


def install() -> bool:
    """Install the hook; True when it is active (aiogram not imported yet, not switched off)."""
    if State.installed:
        return True
    if os.environ.get("TUAN_EAGER_MODELS", "").strip() not in ("", "0"):
        return False
    if any(name in sys.modules for name in HOOKS):  # too late: aiogram is imported already
        import warnings

        warnings.warn(
            "aiogram was imported before bot.lazy_models: its models are built at import "
            "(about 100 MB more); import `bot` first",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    sys.meta_path.insert(0, _Finder())
    State.installed = True
    return True
