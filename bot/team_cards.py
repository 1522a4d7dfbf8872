"""Team cards (services.teams) in the groups: each open team's card is posted as a reply to
its deal's post and edited with that post, inside the deal's coalesced refresh
(bot.posts.edit_deals), so a rush of joins costs one edit per card per interval and the
final state is always shown. A card is claimed in the database before it is sent
(services.teams.claim_card), so two refreshes never both post it; a failed send gives the
claim back. Each card records the version of the deal it shows, so a crash between a change
and its edit is caught up at start."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiogram.methods import EditMessageText, SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from aiogram.utils.i18n import I18n

from bot.sender import Sender
from handlers.callbacks import TeamCB
from models import Database, Deal, DealPost
from services import teams
from services.teams import TeamView
from services.timezones import utcnow
from views.team_texts import card_text, join_label, leave_label, link_label, start_label

log = logging.getLogger(__name__)


def link_of(bot_username: str | None, view: TeamView) -> str:
    from bot.posts import share_link  # bot.posts imports this module

    return share_link(bot_username, teams.link_payload(view.team))


def start_button(deal: Deal, group_id: int = 0) -> InlineKeyboardButton:
    """ "Start a team" on a deal's post (`group_id` 0) or private card (its group)."""
    data = TeamCB(action="start", id=deal.id, group_id=group_id).pack()
    return InlineKeyboardButton(text=start_label(deal), callback_data=data)


def card_keyboard(view: TeamView, link: str) -> InlineKeyboardMarkup | None:
    """Join / Leave / Invite friends on an open team's card; none once it is over."""
    if view.team.status != "open":
        return None
    team_id = view.team.id
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=join_label(), callback_data=TeamCB(action="join", id=team_id).pack()
                )
            ],
            [
                InlineKeyboardButton(
                    text=leave_label(), callback_data=TeamCB(action="leave", id=team_id).pack()
                ),
                InlineKeyboardButton(text=link_label(), url=link),
            ],
        ]
    )


@dataclass
class Shown:
    """What a refresh did with a deal's team cards, recorded afterwards."""

    edits: int = 0
    posted: list[tuple[int, int | None]] = field(default_factory=list)  # team, message id
    settled: list[int] = field(default_factory=list)  # teams whose card shows the version


async def edit_teams(
    db: Database,
    views: list[TeamView],
    posts: dict[int, DealPost],
    i18n: I18n,
    read_at: datetime,
    sender: Sender,
    bot_username: str | None,
    done: Shown,
) -> None:
    """Post the cards of open teams that have none (a reply to the deal's post in the team's
    group) and edit the others to their state."""
    for view in views:
        team, group = view.team, view.group
        if not group.is_active:
            continue
        link = link_of(bot_username, view)
        with i18n.context(), i18n.use_locale(group.language):
            text = card_text(view, read_at, group.language)
            markup = card_keyboard(view, link)
        if team.message_id is None:
            post = posts.get(group.id)
            if team.status != "open" or post is None or not post.message_id:
                continue
            async with db.transaction() as session:
                if not await teams.claim_card(session, team.id, utcnow()):
                    continue
            method: Any = SendMessage(
                chat_id=group.chat_id,
                text=text,
                reply_markup=markup,
                reply_parameters=ReplyParameters(
                    message_id=post.message_id, allow_sending_without_reply=True
                ),
            )
            outcome = await sender.deliver(method, chat_id=group.chat_id)
            message_id = getattr(outcome.result, "message_id", None) if outcome.ok else None
            done.posted.append((team.id, message_id))
            if message_id:
                done.settled.append(team.id)
            continue
        method = EditMessageText(
            chat_id=group.chat_id, message_id=team.message_id, text=text, reply_markup=markup
        )
        outcome = await sender.deliver(method, chat_id=group.chat_id)
        if outcome.ok:
            done.edits += 1
        if outcome.ok or not outcome.transient:
            done.settled.append(team.id)
