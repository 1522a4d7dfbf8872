"""Tuan's test suite. `bot` is imported first so that aiogram's models are built on first use
here as in the running bot (bot/lazy_models.py)."""

import bot  # noqa: F401
