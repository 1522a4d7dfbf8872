"""Protection from spam (services.moderation): acting on what the in-memory screen
(bot/moderation.py) flagged, new members' challenges, the rules' /settings card, /modlog in
private with Undo, and /allow, /unallow in the group."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.moderation import ModerationGate, Verdict
from bot.moderation_cards import settings_keyboard, undo_keyboard
from handlers.callbacks import ChallengeCB, ModCB
from handlers.common import group_gone
from models import Group, User
from services import events
from services import groups as group_service
from services import moderation as mod_service
from services.admins import AdminDirectory
from services.errors import GroupNotFound, NotGroupAdmin
from services.timezones import Clock
from views import moderation_texts as texts

GROUP_TYPES = {"group", "supergroup"}
VERDICT = "moderation_verdict"  # the data key ChatterMiddleware leaves its screen's result in


async def flagged(message: Message, bot: Bot, moderation: ModerationGate, **data: Any) -> Any:
    """The screen's verdict on a group message (made once: by the chatter fast path, or
    here for the messages that take the full path)."""
    verdict = data[VERDICT] if VERDICT in data else await moderation.screen(message, bot)
    return {"verdict": verdict} if verdict is not None else False


async def moderate(
    message: Message,
    verdict: Verdict,
    session: AsyncSession,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """Act on a flagged message, re-checked against the database and the current admins;
    when nothing applies the message goes on to the other handlers (a command, say)."""
    group = await group_service.get_by_chat(session, message.chat.id)
    sender = message.from_user
    if group is None or sender is None:
        raise SkipHandler
    now = clock.now()
    policy = verdict.policy
    current = await admins.admins_of(session, group)
    if verdict.kind == "joins":
        for member in message.new_chat_members or ():
            if member.is_bot:
                continue
            await group_service.record_membership(session, group, member.id, "member", at=now)
            await mod_service.start_challenge(session, policy, member.id, current, now)
        first = (message.new_chat_members or [sender])[0]
        await mod_service.remove_join_message(
            session, policy, first.id, message.message_id, message.date, now
        )
        return
    if verdict.kind == "flood":
        done = await mod_service.mute_flood(session, policy, sender.id, message.date, current, now)
    else:
        done = await mod_service.remove_link(
            session, policy, sender.id, message.message_id, message.date, verdict.kind, current, now
        )
    if not done:
        raise SkipHandler


async def member_joined(
    session: AsyncSession,
    group: Group,
    user_id: int,
    admins: AdminDirectory,
    moderation: ModerationGate,
    now,
) -> None:
    """A chat_member update made someone a member (handlers.groups): challenged when the
    group asks."""
    policy = await moderation.policy(group.chat_id)
    if policy is None or not policy.challenge:
        return
    current = await admins.admins_of(session, group)
    await mod_service.start_challenge(session, policy, user_id, current, now)


async def record_rights(session: AsyncSession, group: Group, member: Any) -> None:
    """The bot's own rights in the group, from its my_chat_member update."""
    creator = member.status == "creator"
    await mod_service.record_bot_rights(
        session,
        group.id,
        creator or bool(getattr(member, "can_restrict_members", False)),
        creator or bool(getattr(member, "can_delete_messages", False)),
    )


# ---------------------------------------------------------------- the challenge


async def challenge_tapped(
    query: CallbackQuery, callback_data: ChallengeCB, session: AsyncSession, clock: Clock
) -> None:
    message_id = query.message.message_id if query.message is not None else None
    answer = await mod_service.answer_challenge(
        session,
        callback_data.token,
        callback_data.code,
        query.from_user.id,
        message_id,
        clock.now(),
    )
    await query.answer(texts.answer_text(answer.outcome), show_alert=answer.outcome != "passed")


# ---------------------------------------------------------------- /settings and /modlog


def refusal() -> str:
    return _("Only the owner and administrators of a group can change its settings.")


async def _card(session: AsyncSession, group: Group) -> tuple[str, Any]:
    row = await mod_service.settings_of(session, group.id)
    allowed = await mod_service.allowed_count(session, group.id)
    return texts.settings_text(group, row, allowed), settings_keyboard(group.id)


async def mod_button(
    query: CallbackQuery,
    callback_data: ModCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    action = callback_data.action
    try:
        if action == "undo":
            await _undo(query, callback_data, session, user, admins, clock)
            return
        group = await admins.require_admin(session, callback_data.group_id, user.id)
    except NotGroupAdmin:
        await query.answer(refusal(), show_alert=True)
        return
    except GroupNotFound:
        await query.answer(group_gone(), show_alert=True)
        return
    if action in mod_service.TOGGLES:
        await mod_service.toggle(session, group.id, action, clock.now())
        events.record(session, events.RulesChanged(group.chat_id))  # read again once committed
        await query.answer(_("Saved."))
    elif action == "open":
        await query.answer()
    else:
        await query.answer(_("This button is out of date. Send /settings again."), show_alert=True)
        return
    text, keyboard = await _card(session, group)
    await query.bot.send_message(user.id, text, reply_markup=keyboard)


async def _undo(
    query: CallbackQuery,
    callback_data: ModCB,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    row = await mod_service.action(session, callback_data.action_id)
    if row is None or row.group_id != callback_data.group_id:
        raise NotGroupAdmin(callback_data.group_id)
    await admins.require_admin(session, row.group_id, user.id)  # an admin now, not then
    done = await mod_service.undo(session, row, user.id, clock.now())
    await query.answer(texts.undo_answer(done), show_alert=not done)


async def modlog(
    message: Message, session: AsyncSession, user: User, admins: AdminDirectory, clock: Clock
) -> None:
    now = clock.now()
    groups = [g for g, _status in await admins.groups_of(session, user.id)]
    if not groups:
        await message.answer(texts.admins_only())
        return
    logs = [(g, await mod_service.recent(session, g.id, now)) for g in groups]
    text, undo = texts.log_text([(g, lines) for g, lines in logs if lines])
    await message.answer(text, reply_markup=undo_keyboard(undo))


# ---------------------------------------------------------------- /allow, /unallow


async def allow_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    group = await group_service.get_by_chat(session, message.chat.id)
    if group is None or user.id not in await admins.admins_of(session, group):
        await message.answer(texts.admins_only())
        return
    reply = message.reply_to_message
    if not command.args and reply is not None and reply.from_user and not reply.from_user.is_bot:
        target_id: int | None = reply.from_user.id
    else:
        target = mod_service.parse_allow(command.args)
        if target is None:
            await message.answer(texts.allow_usage())
            return
        target_id = await mod_service.resolve(session, target)
        if target_id is None:
            await message.answer(texts.allow_unknown())
            return
    allowed = command.command == "allow"
    changed = await mod_service.set_allowed(
        session, group.id, target_id, allowed, user.id, clock.now()
    )
    events.record(session, events.RulesChanged(group.chat_id))
    await message.answer(texts.allow_done(allowed, changed))


def router() -> Router:
    r = Router(name="moderation")
    in_group = F.chat.type.in_(GROUP_TYPES)
    r.message.register(moderate, in_group, flagged)
    r.edited_message.register(moderate, in_group, flagged)  # a link edited in later
    r.message.register(allow_command, Command("allow", "unallow"), in_group)
    r.message.register(modlog, Command("modlog"), F.chat.type == "private")
    r.callback_query.register(challenge_tapped, ChallengeCB.filter())
    r.callback_query.register(mod_button, ModCB.filter())
    return r
