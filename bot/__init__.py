"""Tuan (团): the Telegram side — configuration, Dispatcher factory, middlewares and runners."""
