"""Reviews (services.reviews), in private chat: the stars of an invitation or of /reviews,
then a short comment (a form state: the member's next text) or Skip; Comment and Remove from
/reviews; the owner's `/reviews D17` with Reply (a form state: the reply's text).

Refusals are domain errors, answered by the errors router (views.review_texts); inside a
form step they are answered here, and the form ends."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.review_cards import comment_keyboard, mine_keyboard, owner_keyboard
from handlers.callbacks import ReviewCB
from models import User
from services import reviews
from services.admins import AdminDirectory
from services.errors import DomainError
from services.parsing import ParseError
from services.timezones import Clock
from views import review_texts as texts
from views.deal_texts import domain_error_text, parse_error_text

KEY = "review_id"
COMMENT_WAIT = timedelta(minutes=30)
SINCE = "asked_at"  # when the comment was asked for: a later message is not taken as one


class ReviewForm(StatesGroup):
    comment = State()  # the member's comment on their review
    reply = State()  # the organiser's reply to a review


def _refusal(err: DomainError) -> str:
    return texts.review_error_text(err) or domain_error_text(err)


async def _review_in_form(state: FSMContext) -> int:
    return int((await state.get_data()).get(KEY) or 0)


async def _ask_comment(state: FSMContext, review_id: int, now: datetime) -> None:
    await state.set_state(ReviewForm.comment)
    await state.set_data({KEY: review_id, SINCE: now.isoformat()})


async def rate_button(
    query: CallbackQuery,
    callback_data: ReviewCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    clock: Clock,
) -> None:
    now = clock.now()
    rated = await reviews.rate(session, callback_data.id, user.id, callback_data.stars, now)
    await _ask_comment(state, rated.review.id, now)
    await query.answer(texts.rated_answer(rated))
    await query.bot.send_message(
        user.id,
        texts.ask_comment(rated.deal, rated.review, now),
        reply_markup=comment_keyboard(rated.review),
    )


async def comment_button(
    query: CallbackQuery,
    callback_data: ReviewCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    clock: Clock,
) -> None:
    now = clock.now()
    review, deal = await reviews.for_comment(session, callback_data.id, user.id, now)
    await _ask_comment(state, review.id, now)
    await query.answer()
    await query.bot.send_message(
        user.id, texts.ask_comment(deal, review, now), reply_markup=comment_keyboard(review)
    )


async def skip_button(
    query: CallbackQuery, callback_data: ReviewCB, state: FSMContext, session: AsyncSession
) -> None:
    if (
        await state.get_state() == ReviewForm.comment.state
        and await _review_in_form(state) == callback_data.id
    ):
        await state.clear()
    await query.answer(texts.skipped(), show_alert=True)


async def remove_button(
    query: CallbackQuery,
    callback_data: ReviewCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    clock: Clock,
) -> None:
    if not await reviews.remove(session, callback_data.id, user.id, clock.now()):
        raise reviews.ReviewNotFound(callback_data.id)
    if await _review_in_form(state) == callback_data.id:
        await state.clear()
    await query.answer(texts.removed(), show_alert=True)


async def reply_button(
    query: CallbackQuery,
    callback_data: ReviewCB,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
) -> None:
    review, _deal = await reviews.review_for_reply(
        session, callback_data.id, user.id, admins=admins
    )
    await state.set_state(ReviewForm.reply)
    await state.set_data({KEY: review.id})
    await query.answer()
    await query.bot.send_message(user.id, texts.ask_reply(review))


async def comment_typed(
    message: Message, state: FSMContext, session: AsyncSession, user: User, clock: Clock
) -> None:
    """The member's comment: what they send here, and only this, is stored (their words);
    a message long after the question (COMMENT_WAIT) is not taken as a comment."""
    now = clock.now()
    data = await state.get_data()
    asked = data.get(SINCE)
    if not asked or now - datetime.fromisoformat(asked) > COMMENT_WAIT:
        await state.clear()
        await message.answer(texts.comment_expired())
        return
    try:
        await reviews.comment(session, int(data.get(KEY) or 0), user.id, message.text, now)
    except ParseError as err:
        await message.answer(parse_error_text(err))
        return
    except DomainError as err:
        await state.clear()
        await message.answer(_refusal(err))
        return
    await state.clear()
    await message.answer(texts.comment_saved())


async def reply_typed(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    try:
        _review, told = await reviews.reply(
            session, await _review_in_form(state), user.id, message.text, clock.now(),
            admins=admins,
        )  # fmt: skip
    except ParseError as err:
        await message.answer(parse_error_text(err))
        return
    except DomainError as err:
        await state.clear()
        await message.answer(_refusal(err))
        return
    await state.clear()
    await message.answer(texts.reply_sent(told))


async def not_text(message: Message) -> None:
    await message.answer(texts.not_text())


async def cancel_command(message: Message, state: FSMContext, session: AsyncSession) -> None:
    await state.clear()
    await message.answer(texts.cancelled())


async def reviews_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    admins: AdminDirectory,
    clock: Clock,
) -> None:
    """/reviews: the member's own; /reviews D17: the reviews of a deal one runs."""
    if await state.get_state() in ReviewForm.__all_states_names__:
        await state.clear()
    wanted = reviews.parse_args(command.args)
    if wanted is None:
        await message.answer(texts.usage())
        return
    now = clock.now()
    if wanted is True:
        items = await reviews.mine(session, user.id)
        await message.answer(texts.mine_text(items, now), reply_markup=mine_keyboard(items, now))
        return
    deal, items, rating = await reviews.of_deal(session, int(wanted), user.id, admins=admins)
    await message.answer(texts.owner_text(deal, items, rating), reply_markup=owner_keyboard(items))


def router() -> Router:
    r = Router(name="reviews")
    r.message.filter(F.chat.type == "private")
    r.message.register(reviews_command, Command("reviews"))
    r.message.register(cancel_command, Command("cancel"), StateFilter(ReviewForm))
    r.message.register(
        comment_typed, StateFilter(ReviewForm.comment), F.text, ~F.text.startswith("/")
    )
    r.message.register(reply_typed, StateFilter(ReviewForm.reply), F.text, ~F.text.startswith("/"))
    r.message.register(not_text, StateFilter(ReviewForm), ~F.text)
    r.callback_query.register(rate_button, ReviewCB.filter(F.action == "rate"))
    r.callback_query.register(comment_button, ReviewCB.filter(F.action == "comment"))
    r.callback_query.register(skip_button, ReviewCB.filter(F.action == "skip"))
    r.callback_query.register(remove_button, ReviewCB.filter(F.action == "remove"))
    r.callback_query.register(reply_button, ReviewCB.filter(F.action == "reply"))
    return r
