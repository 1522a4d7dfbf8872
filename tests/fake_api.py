"""A fake Bot API session: records every request, answers like Telegram, injects errors.

It plugs into aiogram's `Bot(session=...)`, so the real Bot, Dispatcher and handlers run
unchanged; nothing leaves the process.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict, deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from aiogram import Bot
from aiogram import methods as m
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.methods import TelegramMethod
from aiogram.types import (
    AcceptedGiftTypes,
    Chat,
    ChatFullInfo,
    ChatInviteLink,
    ChatMemberAdministrator,
    ChatMemberMember,
    ChatMemberOwner,
    ChatPermissions,
    File,
    Message,
    Poll,
    PollOption,
    Update,
    User,
)

TEXT_LIMIT = 4096  # sendMessage / editMessageText: text after entity parsing
CAPTION_LIMIT = 1024  # a photo's or document's caption
ALERT_LIMIT = 200  # answerCallbackQuery text

BOT_ID = 700_000_001
BOT_USERNAME = "tuan_test_bot"


def chat_for(chat_id: int | str, title: str | None = None) -> Chat:
    if isinstance(chat_id, str):
        return Chat(id=-1, type="channel", title=chat_id)
    if chat_id > 0:
        return Chat(id=chat_id, type="private", first_name=f"user{chat_id}")
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return Chat(id=chat_id, type=kind, title=title or f"group{chat_id}")


def admin_member(user: User, *, can_invite: bool = True) -> ChatMemberAdministrator:
    return ChatMemberAdministrator(
        user=user,
        can_be_edited=False,
        is_anonymous=False,
        can_manage_chat=True,
        can_delete_messages=True,
        can_manage_video_chats=True,
        can_restrict_members=True,
        can_promote_members=False,
        can_change_info=True,
        can_invite_users=can_invite,
        can_post_stories=False,
        can_edit_stories=False,
        can_delete_stories=False,
        can_send_welcome_messages=False,
    )


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_length(text: str | None, parse_mode: Any = "HTML") -> int:
    """A text's length as Telegram counts it: after the HTML tags and entities are parsed
    (the bot's default parse mode), in UTF-16 code units."""
    if not text:
        return 0
    if parse_mode is None or (isinstance(parse_mode, str) and parse_mode.upper() != "HTML"):
        plain = text
    else:
        parser = _Visible()
        parser.feed(text)
        parser.close()
        plain = "".join(parser.parts)
    return len(plain.encode("utf-16-le")) // 2


def too_long(method: TelegramMethod[Any]) -> str | None:
    """Telegram's refusal of a text, caption or alert beyond its limits (None: it fits)."""
    mode = getattr(method, "parse_mode", "HTML")
    mode = "HTML" if not isinstance(mode, str | None) else mode  # the bot's default
    if isinstance(method, (m.SendMessage, m.EditMessageText)):
        if visible_length(method.text, mode) > TEXT_LIMIT:
            return "Bad Request: message is too long"
    if isinstance(method, (m.SendPhoto, m.SendDocument, m.EditMessageCaption)):
        if visible_length(method.caption, mode) > CAPTION_LIMIT:
            return "Bad Request: message caption is too long"
    if isinstance(method, m.AnswerCallbackQuery):
        if len((method.text or "").encode("utf-16-le")) // 2 > ALERT_LIMIT:
            return "Bad Request: MESSAGE_TOO_LONG"
    if isinstance(method, m.AnswerInlineQuery):
        if len(method.results) > 50:
            return "Bad Request: RESULTS_TOO_MUCH"
        for item in method.results:
            if not 1 <= len(item.id.encode()) <= 64:
                return "Bad Request: RESULT_ID_INVALID"
            content = getattr(item, "input_message_content", None)
            text = getattr(content, "message_text", None)
            if text is not None and visible_length(text, "HTML") > TEXT_LIMIT:
                return "Bad Request: MESSAGE_TOO_LONG"
            caption = getattr(item, "caption", None)
            if caption is not None and visible_length(caption, "HTML") > CAPTION_LIMIT:
                return "Bad Request: MESSAGE_CAPTION_TOO_LONG"
    return None


@dataclass
class Injected:
    kind: str  # retry_after | forbidden | network | bad_request | migrate
    method: type[TelegramMethod] | None
    chat_id: int | None
    retry_after: int = 1
    message: str = ""
    migrate_to: int = 0
    inline_message_id: str | None = None  # an edit of that inline card only


FILE_BYTES = b"\xff\xd8\xff\xe0fake-jpeg"  # what a downloaded file holds


class FakeTelegram(BaseSession):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.times: list[float] = []
        self.me = User(
            id=BOT_ID,
            is_bot=True,
            first_name="Tuan",
            username=BOT_USERNAME,
            can_join_groups=True,
            can_read_all_group_messages=True,
            supports_inline_queries=False,
        )
        self._message_ids: dict[int | str, itertools.count[int]] = defaultdict(
            lambda: itertools.count(1)
        )
        self.admins: dict[int, list[Any]] = {}
        self.members: dict[tuple[int, int], Any] = {}
        self._faults: deque[Injected] = deque()
        self.refused: list[TelegramMethod[Any]] = []  # beyond Telegram's length limits
        self.pending: list[Update] = []  # what getUpdates serves, like Telegram's queue
        self._arrived = asyncio.Event()
        self.on_request: Callable[[TelegramMethod[Any]], Any] | None = None
        self.block: asyncio.Event | None = None  # when set to an unset Event, sends wait on it
        # Polls sent (sendPoll): poll id → (chat id, message id, the SendPoll); their counts
        # per option (a test sets them: what Telegram would count) are in poll_counts.
        self.polls: dict[str, tuple[int, int, m.SendPoll]] = {}
        self.poll_counts: dict[str, list[int]] = {}
        self.stopped: set[str] = set()

    # ------------------------------------------------------------------ configuration
    def set_admins(
        self, chat_id: int, owner: User, *admins: User, bot_is_admin: bool = True
    ) -> None:
        members: list[Any] = [ChatMemberOwner(user=owner, is_anonymous=False)]
        members += [admin_member(u) for u in admins]
        if bot_is_admin:
            members.append(admin_member(self.me))
        self.admins[chat_id] = members

    def fail_next(
        self,
        kind: str,
        method: type[TelegramMethod] | None = None,
        *,
        chat_id: int | None = None,
        times: int = 1,
        retry_after: int = 1,
        message: str = "",
        migrate_to: int = 0,
        inline_message_id: str | None = None,
    ) -> None:
        """The next `times` matching requests fail with a 429, 403, network or 400 error, or
        (kind "migrate") say the group became the supergroup `migrate_to`."""
        for _ in range(times):
            self._faults.append(
                Injected(kind, method, chat_id, retry_after, message, migrate_to, inline_message_id)
            )

    # ------------------------------------------------------------------ inspection
    def of(self, kind: type[TelegramMethod]) -> list[Any]:
        return [r for r in self.requests if isinstance(r, kind)]

    def sent(self, chat_id: int | None = None) -> list[m.SendMessage]:
        return [r for r in self.of(m.SendMessage) if chat_id is None or r.chat_id == chat_id]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [r.text for r in self.sent(chat_id)]

    def answers(self) -> list[m.AnswerCallbackQuery]:
        return self.of(m.AnswerCallbackQuery)

    def clear(self) -> None:
        self.requests.clear()
        self.times.clear()

    # ------------------------------------------------------------------ BaseSession
    async def close(self) -> None:
        return None

    async def stream_content(
        self,
        url: str,
        headers=None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield FILE_BYTES  # every file downloaded (getFile's path) has these bytes

    def _fault_for(self, method: TelegramMethod[Any]) -> Injected | None:
        chat_id = getattr(method, "chat_id", None)
        for fault in list(self._faults):
            if fault.method is not None and not isinstance(method, fault.method):
                continue
            if fault.chat_id is not None and fault.chat_id != chat_id:
                continue
            wanted = fault.inline_message_id
            if wanted is not None and getattr(method, "inline_message_id", None) != wanted:
                continue
            self._faults.remove(fault)
            return fault
        return None

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        if self.block is not None and not isinstance(method, m.GetUpdates):
            await self.block.wait()
        self.requests.append(method)
        self.times.append(time.monotonic())
        if self.on_request is not None:
            self.on_request(method)
        refusal = too_long(method)
        if refusal is not None:  # like Telegram; the harness fails a test that saw one
            self.refused.append(method)
            raise TelegramBadRequest(method=method, message=refusal)
        fault = self._fault_for(method)
        if fault is not None:
            if fault.kind == "retry_after":
                raise TelegramRetryAfter(
                    method=method, message="Too Many Requests", retry_after=fault.retry_after
                )
            if fault.kind == "forbidden":
                raise TelegramForbiddenError(
                    method=method,
                    message=fault.message or "Forbidden: bot was kicked from the group chat",
                )
            if fault.kind == "migrate":
                raise TelegramMigrateToChat(
                    method=method,
                    message="Bad Request: group chat was upgraded to a supergroup chat",
                    migrate_to_chat_id=fault.migrate_to,
                )
            if fault.kind == "network":
                raise TelegramNetworkError(method=method, message="Connection reset")
            raise TelegramBadRequest(method=method, message=fault.message or "Bad Request")
        return await self._answer(bot, method)

    async def _answer(self, bot: Bot, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, m.GetMe):
            return self.me
        if isinstance(method, m.GetUpdates):
            return await self._get_updates(method)
        if isinstance(method, (m.SendMessage, m.SendPhoto, m.SendDocument, m.SendInvoice)):
            return self._message(method)
        if isinstance(method, (m.EditMessageText, m.EditMessageCaption, m.EditMessageReplyMarkup)):
            if method.inline_message_id:
                return True
            return Message(
                message_id=method.message_id,
                date=int(time.time()),
                chat=chat_for(method.chat_id),
                from_user=self.me,
                text=getattr(method, "text", None),
                edit_date=int(time.time()),
            )
        if isinstance(method, m.SendPoll):
            return self._poll_message(method)
        if isinstance(method, m.StopPoll):
            for poll_id, (chat_id, message_id, _sent) in self.polls.items():
                if (chat_id, message_id) == (method.chat_id, method.message_id):
                    if poll_id in self.stopped:
                        raise TelegramBadRequest(
                            method=method, message="Bad Request: poll has already been closed"
                        )
                    self.stopped.add(poll_id)
                    return self.poll_state(poll_id, closed=True)
            raise TelegramBadRequest(method=method, message="Bad Request: poll can't be stopped")
        if isinstance(method, m.GetChat):
            chat = chat_for(method.chat_id)
            return ChatFullInfo(
                id=chat.id,
                type=chat.type,
                title=chat.title,
                accent_color_id=0,
                max_reaction_count=11,
                accepted_gift_types=AcceptedGiftTypes(
                    unlimited_gifts=False,
                    limited_gifts=False,
                    unique_gifts=False,
                    premium_subscription=False,
                    gifts_from_channels=False,
                ),
                permissions=ChatPermissions(can_send_messages=True, can_send_photos=False),
            )
        if isinstance(method, m.GetChatAdministrators):
            return self.admins.get(method.chat_id, [])
        if isinstance(method, m.GetChatMember):
            for member in self.admins.get(method.chat_id, []):
                if member.user.id == method.user_id:
                    return member
            return self.members.get(
                (method.chat_id, method.user_id),
                ChatMemberMember(user=User(id=method.user_id, is_bot=False, first_name="member")),
            )
        if isinstance(method, m.GetFile):
            return File(
                file_id=method.file_id, file_unique_id=method.file_id[:16], file_path="photos/f.jpg"
            )
        if isinstance(method, m.CreateInvoiceLink):
            return f"https://t.me/$invoice-{method.payload}"
        if isinstance(method, m.CreateChatInviteLink):
            n = len(self.of(m.CreateChatInviteLink))
            return ChatInviteLink(
                invite_link=f"https://t.me/+fake{method.chat_id}x{n}",
                creator=self.me,
                creates_join_request=False,
                is_primary=False,
                is_revoked=False,
                name=method.name,
            )
        return True

    def _message(self, method: Any) -> Message:
        chat = chat_for(method.chat_id)
        return Message(
            message_id=next(self._message_ids[method.chat_id]),
            date=int(time.time()),
            chat=chat,
            from_user=self.me,
            text=getattr(method, "text", None),
            caption=getattr(method, "caption", None),
        )

    def _poll_message(self, method: m.SendPoll) -> Message:
        message_id = next(self._message_ids[method.chat_id])
        poll_id = f"poll{method.chat_id}x{message_id}"
        self.polls[poll_id] = (method.chat_id, message_id, method)
        self.poll_counts[poll_id] = [0] * len(method.options)
        return Message(
            message_id=message_id,
            date=int(time.time()),
            chat=chat_for(method.chat_id),
            from_user=self.me,
            poll=self.poll_state(poll_id),
        )

    def poll_state(self, poll_id: str, *, closed: bool = False) -> Poll:
        """A sent poll as Telegram describes it (in a `poll` update, stopPoll's answer)."""
        _chat_id, _message_id, sent = self.polls[poll_id]
        counts = self.poll_counts[poll_id]
        texts = [o.text if hasattr(o, "text") else str(o) for o in sent.options]
        return Poll(
            id=poll_id,
            question=sent.question,
            options=[
                PollOption(persistent_id=str(i), text=text, voter_count=counts[i])
                for i, text in enumerate(texts)
            ],
            total_voter_count=sum(counts),
            is_closed=closed,
            is_anonymous=sent.is_anonymous is not False,
            type="regular",
            allows_multiple_answers=bool(sent.allows_multiple_answers),
            allows_revoting=True,
            members_only=False,
        )

    def push_update(self, *updates: Update) -> None:
        self.pending.extend(updates)
        self._arrived.set()

    async def _get_updates(self, method: m.GetUpdates) -> list[Update]:
        """Like Telegram: an offset confirms (drops) every earlier update; the rest are served
        again until confirmed."""
        offset = method.offset or 0
        self.pending = [u for u in self.pending if u.update_id >= offset]
        if not self.pending and method.timeout:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(method.timeout, 0.2))
            except TimeoutError:
                return []
            self.pending = [u for u in self.pending if u.update_id >= offset]
        return self.pending[: method.limit or 100]
