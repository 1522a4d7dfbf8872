"""Middlewares: one database transaction per update (only when a handler needs it)."""
