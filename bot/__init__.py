"""Tuan (团): the Telegram side — configuration, Dispatcher factory, middlewares and runners."""

from bot.lazy_models import install as _install_lazy_models

# before anything imports aiogram: its models are built on first use (bot/lazy_models.py)
_install_lazy_models()
