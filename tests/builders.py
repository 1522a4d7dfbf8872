"""Builders for Telegram updates, shaped like the ones Telegram sends."""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiogram.types import (
    CallbackQuery,
    Chat,
    ChatInviteLink,
    ChatMemberAdministrator,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberUpdated,
    ChosenInlineResult,
    InlineQuery,
    Message,
    MessageEntity,
    PreCheckoutQuery,
    SuccessfulPayment,
    Update,
    User,
)

from tests.fake_api import BOT_ID, BOT_USERNAME, admin_member

BOT_USER = User(id=BOT_ID, is_bot=True, first_name="Tuan", username=BOT_USERNAME)


def person(
    user_id: int,
    first_name: str = "",
    *,
    language: str | None = "en",
    username: str | None = None,
    last_name: str | None = None,
) -> User:
    return User(
        id=user_id,
        is_bot=False,
        first_name=first_name or f"User{user_id}",
        last_name=last_name,
        username=username,
        language_code=language,
    )


def group(
    chat_id: int = -1001000000001, title: str = "Test Group", kind: str | None = None
) -> Chat:
    if kind is None:
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return Chat(id=chat_id, type=kind, title=title)


def private(user: User) -> Chat:
    return Chat(id=user.id, type="private", first_name=user.first_name, username=user.username)


def _status(status: str, user: User) -> Any:
    if status == "administrator":
        return admin_member(user)
    if status == "member":
        return ChatMemberMember(user=user)
    if status == "left":
        return ChatMemberLeft(user=user)
    if status == "kicked":
        from aiogram.types import ChatMemberBanned

        return ChatMemberBanned(user=user, until_date=0)
    if status == "creator":
        from aiogram.types import ChatMemberOwner

        return ChatMemberOwner(user=user, is_anonymous=False)
    raise ValueError(status)


class Updates:
    """Makes updates with increasing update ids and message ids."""

    def __init__(self, start: int = 1000, date: int | None = None) -> None:
        self._date = date  # every update's date; None: the moment it is built
        self._ids = itertools.count(start)
        self._messages = itertools.count(1)
        self._callbacks = itertools.count(1)

    def now(self) -> int:
        return self._date if self._date is not None else int(time.time())

    def next_id(self) -> int:
        return next(self._ids)

    def message(
        self, chat: Chat, user: User | None, text: str | None = None, **fields: Any
    ) -> Update:
        entities = None
        if text and text.startswith("/"):
            command = text.split()[0]
            entities = [MessageEntity(type="bot_command", offset=0, length=len(command))]
        msg = Message(
            message_id=next(self._messages),
            date=self.now(),
            chat=chat,
            from_user=user,
            text=text,
            entities=entities,
            **fields,
        )
        return Update(update_id=self.next_id(), message=msg)

    def command(self, chat: Chat, user: User, text: str) -> Update:
        assert text.startswith("/")
        return self.message(chat, user, text)

    def callback(
        self, user: User, data: str, *, chat: Chat | None = None, message_id: int = 1
    ) -> Update:
        chat = chat or private(user)
        msg = Message(
            message_id=message_id, date=self.now(), chat=chat, from_user=BOT_USER, text="…"
        )
        query = CallbackQuery(
            id=str(next(self._callbacks)),
            from_user=user,
            chat_instance="ci",
            message=msg,
            data=data,
        )
        return Update(update_id=self.next_id(), callback_query=query)

    def pre_checkout(self, user: User, payload: str, currency: str, amount: int) -> Update:
        """Telegram asks whether `user` may pay `amount` for the invoice with `payload`."""
        query = PreCheckoutQuery(
            id=str(next(self._callbacks)),
            from_user=user,
            currency=currency,
            total_amount=amount,
            invoice_payload=payload,
        )
        return Update(update_id=self.next_id(), pre_checkout_query=query)

    def paid(
        self,
        user: User,
        payload: str,
        currency: str,
        amount: int,
        charge_id: str,
        provider_charge_id: str = "",
        *,
        update_id: int | None = None,
    ) -> Update:
        """The `successful_payment` message of a payment (`update_id`: a replay of one)."""
        payment = SuccessfulPayment(
            currency=currency,
            total_amount=amount,
            invoice_payload=payload,
            telegram_payment_charge_id=charge_id,
            provider_payment_charge_id=provider_charge_id or f"prov-{charge_id}",
        )
        msg = Message(
            message_id=next(self._messages),
            date=self.now(),
            chat=private(user),
            from_user=user,
            successful_payment=payment,
        )
        return Update(update_id=update_id or self.next_id(), message=msg)

    def inline_query(self, user: User, query: str = "") -> Update:
        event = InlineQuery(
            id=str(next(self._callbacks)),
            from_user=user,
            query=query,
            offset="",
            chat_type="sender",
        )
        return Update(update_id=self.next_id(), inline_query=event)

    def chosen(self, user: User, result_id: str, inline_message_id: str | None) -> Update:
        event = ChosenInlineResult(
            result_id=result_id,
            from_user=user,
            query="",
            inline_message_id=inline_message_id,
        )
        return Update(update_id=self.next_id(), chosen_inline_result=event)

    def card_tap(self, user: User, data: str, inline_message_id: str) -> Update:
        """A button on a card sent through inline mode: no message, an inline_message_id."""
        query = CallbackQuery(
            id=str(next(self._callbacks)),
            from_user=user,
            chat_instance="ci",
            inline_message_id=inline_message_id,
            data=data,
        )
        return Update(update_id=self.next_id(), callback_query=query)

    def my_chat_member(self, chat: Chat, actor: User, old: str, new: str) -> Update:
        event = ChatMemberUpdated(
            chat=chat,
            from_user=actor,
            date=self.now(),
            old_chat_member=_status(old, BOT_USER),
            new_chat_member=_status(new, BOT_USER),
        )
        return Update(update_id=self.next_id(), my_chat_member=event)

    def chat_member(
        self,
        chat: Chat,
        user: User,
        old: str,
        new: str,
        *,
        actor: User | None = None,
        invite_link: ChatInviteLink | None = None,
    ) -> Update:
        event = ChatMemberUpdated(
            chat=chat,
            from_user=actor or user,
            date=self.now(),
            old_chat_member=_status(old, user),
            new_chat_member=_status(new, user),
            invite_link=invite_link,
        )
        return Update(update_id=self.next_id(), chat_member=event)

    def promoted(self, chat: Chat, user: User, actor: User) -> Update:
        return self.chat_member(chat, user, "member", "administrator", actor=actor)


__all__ = ["ChatMemberAdministrator", "Updates", "group", "person", "private"]
