"""Keyboards of protection from spam: the /settings card, the challenge, /modlog's Undo."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import ChallengeCB, ModCB, SettingsCB
from services.moderation import EMOJI, ChallengeView
from views.moderation_texts import settings_labels


def settings_button(group_id: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=settings_labels()["open"],
        callback_data=ModCB(action="open", group_id=group_id).pack(),
    )


def settings_keyboard(group_id: int) -> InlineKeyboardMarkup:
    labels = settings_labels()

    def button(action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=labels[action], callback_data=ModCB(action=action, group_id=group_id).pack()
        )

    back = InlineKeyboardButton(
        text=labels["back"], callback_data=SettingsCB(action="open", group_id=group_id).pack()
    )
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button("chal"), button("link")],
            [button("flood"), button("joins")],
            [back],
        ]
    )


def challenge_keyboard(view: ChallengeView) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(
            text=EMOJI[name], callback_data=ChallengeCB(token=view.token, code=code).pack()
        )
        for name, code in view.options
    ]
    return InlineKeyboardMarkup(inline_keyboard=[buttons[:3], buttons[3:]])


def undo_keyboard(undo: list[tuple[int, int, str]]) -> InlineKeyboardMarkup | None:
    if not undo:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=label,
                    callback_data=ModCB(
                        action="undo", group_id=group_id, action_id=action_id
                    ).pack(),
                )
            ]
            for group_id, action_id, label in undo
        ]
    )
