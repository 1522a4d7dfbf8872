"""The outbox's moderation kinds (services.moderation): restrictChatMember (a mute, a
newcomer's restriction, or the group's default permissions back), deleteMessage (within
Telegram's 48 hours) and the challenge message, whose id is recorded once it is sent
(`SETTLED`) so the challenge can be removed when it is settled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiogram.exceptions import TelegramAPIError
from aiogram.methods import DeleteMessage, RestrictChatMember, SendMessage
from aiogram.types import ChatPermissions, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.moderation_cards import challenge_keyboard
from services import moderation
from services.outbox import Claimed
from services.timezones import utcnow
from views.moderation_texts import challenge_text

MUTED = ChatPermissions(
    can_send_messages=False,
    can_send_audios=False,
    can_send_documents=False,
    can_send_photos=False,
    can_send_videos=False,
    can_send_video_notes=False,
    can_send_voice_notes=False,
    can_send_polls=False,
    can_send_other_messages=False,
    can_add_web_page_previews=False,
)
# When the group's own defaults cannot be read: what a member may do in a default group.
OPEN = ChatPermissions(
    can_send_messages=True,
    can_send_audios=True,
    can_send_documents=True,
    can_send_photos=True,
    can_send_videos=True,
    can_send_video_notes=True,
    can_send_voice_notes=True,
    can_send_polls=True,
    can_send_other_messages=True,
    can_add_web_page_previews=True,
)


async def restrict(ctx, payload: dict[str, Any]) -> RestrictChatMember:
    permissions = MUTED
    if payload["open"]:
        permissions = OPEN
        try:  # the group's default permissions, as its admins set them
            chat = await ctx.bot.get_chat(ctx.row.chat_id)
            permissions = chat.permissions or OPEN
        except (TelegramAPIError, ValueError, AttributeError):
            pass
    until = payload.get("until") or None
    return RestrictChatMember(
        chat_id=ctx.row.chat_id,
        user_id=payload["user_id"],
        permissions=permissions,
        use_independent_chat_permissions=True,
        until_date=datetime.fromtimestamp(until, tz=utcnow().tzinfo) if until else None,
    )


async def delete(ctx, payload: dict[str, Any]) -> DeleteMessage | None:
    sent = datetime.fromtimestamp(payload["sent"], tz=utcnow().tzinfo)
    if utcnow() - sent >= moderation.DELETE_WITHIN:
        return None  # past Telegram's 48 hours: it would fail
    return DeleteMessage(chat_id=ctx.row.chat_id, message_id=payload["message_id"])


async def challenge(ctx, payload: dict[str, Any]) -> SendMessage | None:
    view = await moderation.challenge_view(ctx.session, payload["token"])
    if view is None:
        return None  # passed, failed or timed out before it could be posted
    return SendMessage(
        chat_id=ctx.row.chat_id, text=challenge_text(view), reply_markup=challenge_keyboard(view)
    )


async def challenge_sent(
    session: AsyncSession,
    row: Claimed,
    failure: str | None,
    transient: bool,
    result: object,
    now: datetime,
) -> None:
    """The challenge went out: record its message, so it can be removed when settled."""
    if failure is None and isinstance(result, Message):
        await moderation.challenge_posted(session, row.payload["token"], result.message_id, now)


RENDERERS = {
    moderation.KIND_RESTRICT: restrict,
    moderation.KIND_DELETE: delete,
    moderation.KIND_CHALLENGE: challenge,
}
SETTLED = {moderation.KIND_CHALLENGE: challenge_sent}
