"""Texts of /mydata and /forgetme."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _


def forget_text() -> str:
    return "\n".join(
        [
            _("<b>Forget me</b>"),
            "",
            _(
                "<b>Deleted:</b> your name, username and language, your group memberships and "
                "activity counts, your invite and share links (they stop working), your digest "
                "settings, the posts you scheduled, and any unfinished conversation with me."
            ),
            "",
            _(
                "<b>Kept without your name or id:</b> your orders stay in the group owners' "
                "books as an anonymous buyer, with their quantities and amounts; so do your "
                "entries in the credit ledger and who you invited or were invited by. Your "
                "credit balance is forfeited."
            ),
            _(
                "If you created deals, they stay in their groups with their orders, but nobody "
                "can manage them any more: close or cancel your open deals first."
            ),
            "",
            _(
                "This cannot be undone. Send /mydata first for a copy. If you talk to me again "
                "later, I will know you as a new user."
            ),
        ]
    )
