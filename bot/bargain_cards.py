"""Buttons of bargains (services.bargains): "✂️ Bargain" on a deal's post or private card,
and a bargain's page in private chat (Help cut for friends; Buy and Invite friends for its
starter)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import BargainCB
from models import Deal
from services.bargains import BargainView
from views.bargain_texts import buy_label, help_label, link_label, start_label


def start_button(deal: Deal, group_id: int = 0) -> InlineKeyboardButton:
    """ "✂️ Bargain" on a deal's post (`group_id` 0) or private card (its group)."""
    data = BargainCB(action="start", id=deal.id, group_id=group_id).pack()
    return InlineKeyboardButton(text=start_label(), callback_data=data)


def page_keyboard(view: BargainView, viewer_id: int, link: str) -> InlineKeyboardMarkup | None:
    """The starter gets Buy at the price reached and the link to pass on; anyone else Help
    cut. None once the bargain is over."""
    bargain = view.bargain
    if bargain.status != "open":
        return None
    if viewer_id == bargain.starter_id:
        buy = BargainCB(action="buy", id=bargain.id).pack()
        rows = [
            [InlineKeyboardButton(text=buy_label(bargain, view.deal), callback_data=buy)],
            [InlineKeyboardButton(text=link_label(), url=link)],
        ]
    else:
        helped = BargainCB(action="help", id=bargain.id).pack()
        rows = [[InlineKeyboardButton(text=help_label(), callback_data=helped)]]
    return InlineKeyboardMarkup(inline_keyboard=rows)
