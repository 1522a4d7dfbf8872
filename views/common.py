"""Pieces every view uses."""

from __future__ import annotations

from html import escape


def quote(text: str | None) -> str:
    """User text, made safe for HTML parse mode."""
    return escape(text or "", quote=False)
