"""Buttons of lotteries (services.lotteries): Enter on the lottery's post in the group, Claim
on a winner's note in private."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import LotteryCB
from models import Lottery
from views.lottery_texts import claim_label, enter_label


def enter_keyboard(lottery: Lottery) -> InlineKeyboardMarkup:
    data = LotteryCB(action="enter", id=lottery.id).pack()
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=enter_label(), callback_data=data)]]
    )


def claim_keyboard(lottery: Lottery) -> InlineKeyboardMarkup:
    data = LotteryCB(action="claim", id=lottery.id).pack()
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=claim_label(), callback_data=data)]]
    )
