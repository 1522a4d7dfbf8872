"""Buttons of reviews (services.reviews): the stars of an invitation and of /reviews,
Skip and Remove after a rating, Comment and Remove in /reviews, Reply in the owner's list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import ReviewCB
from models import Order, Review
from services import reviews
from services.reviews import Mine
from views.review_texts import (
    comment_label,
    remove_code_label,
    remove_label,
    reply_label,
    skip_label,
)


def star_rows(order_id: int, code: str = "") -> list[list[InlineKeyboardButton]]:
    """1★ … 5★ for the order (`code`: the deal's, before the first, in a list of several)."""
    return [
        [
            InlineKeyboardButton(
                text=f"{code}: {n}★" if code and n == reviews.MIN_STARS else f"{n}★",
                callback_data=ReviewCB(action="rate", id=order_id, stars=n).pack(),
            )
            for n in range(reviews.MIN_STARS, reviews.MAX_STARS + 1)
        ]
    ]


def invite_keyboard(order: Order) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=star_rows(order.id))


def comment_keyboard(review: Review) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=skip_label(), callback_data=ReviewCB(action="skip", id=review.id).pack()
                ),
                InlineKeyboardButton(
                    text=remove_label(),
                    callback_data=ReviewCB(action="remove", id=review.id).pack(),
                ),
            ]
        ]
    )


def mine_keyboard(items: Sequence[Mine], now: datetime) -> InlineKeyboardMarkup | None:
    """Per order still open to a (new) rating: its stars (the first button names the deal);
    per review: Comment (within the window) and Remove (always)."""
    rows: list[list[InlineKeyboardButton]] = []
    for item in items:
        review = item.review
        code = item.deal.code
        if review is None or reviews.editable(review, now):
            rows += star_rows(item.order.id, code)
        if review is None:
            continue
        row = []
        if reviews.editable(review, now):
            row.append(
                InlineKeyboardButton(
                    text=comment_label(code),
                    callback_data=ReviewCB(action="comment", id=review.id).pack(),
                )
            )
        row.append(
            InlineKeyboardButton(
                text=remove_code_label(code),
                callback_data=ReviewCB(action="remove", id=review.id).pack(),
            )
        )
        rows.append(row)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def owner_keyboard(items: Sequence[Review]) -> InlineKeyboardMarkup | None:
    rows = [
        [
            InlineKeyboardButton(
                text=reply_label(review.id),
                callback_data=ReviewCB(action="reply", id=review.id).pack(),
            )
        ]
        for review in items
        if review.reply_text is None
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
