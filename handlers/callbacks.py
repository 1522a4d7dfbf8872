"""Every inline button's callback data, in one place, with every field bounded.

Telegram hands callback data back exactly as a client sends it, so anyone can forge it. Each
number here is bounded as its database column is (ids of 32-bit `Integer` columns, Telegram
ids of `BigInteger` ones) and each page or quantity to a sane range; strings are bounded in
length. A forged or out-of-range button fails `unpack` (a pydantic ValidationError, a
ValueError), so its factory's filter does not match and no handler sees the numbers: the
button is answered "This button is out of date." by the last handler that takes any button
(`handlers.start.stale_button`; `handlers.deal_post.unknown_button` for deal posts). Handlers
keep checking that the ids they get exist and belong to the user.

Every factory packs into Telegram's 64 bytes even with its largest values
(tests/test_errors.py packs each one).
"""

from __future__ import annotations

from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from services.activity import CORE_MAX
from services.parsing import MAX_QUANTITY

MAX_ID = 2**31 - 1  # ids of 32-bit Integer columns: deals, groups, orders, scheduled posts
MAX_BIG = 2**63 - 1  # BigInteger columns: Telegram user and chat ids (pseudonyms are negative)
MAX_PAGE = 9_999  # pages of a list (24 orders a page: far beyond any deal's orders)
WORD = 12  # an action, a step or a state name ("cancel_yes", "description", "picked_up")
VALUE = 16  # a wizard button's value: a group id, a weekday, "participants", "tomorrow9"
CODE = 16  # a language code ("en", "zh_Hans")

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
IdOrNone = Annotated[int, Field(ge=0, le=MAX_ID)]  # 0: no such id on this button
BigId = Annotated[int, Field(ge=-MAX_BIG, le=MAX_BIG)]  # 0: none
Page = Annotated[int, Field(ge=0, le=MAX_PAGE)]
Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY)]  # 0: not a quantity button
CoreDays = Annotated[int, Field(ge=0, le=CORE_MAX)]  # 0: ask for a number of days
Word = Annotated[str, Field(max_length=WORD)]
Value = Annotated[str, Field(max_length=VALUE)]
Code = Annotated[str, Field(max_length=CODE)]
Currency = Annotated[str, Field(max_length=3)]  # ISO 4217, "" for none


def valid_id(value: int) -> bool:
    """An id from elsewhere than callback data (a deep link, a command) that fits the 32-bit
    columns: callback data is bounded by its factory instead."""
    return 0 < value <= MAX_ID


# ---------------------------------------------------------------- groups and deal posts


class DealCB(CallbackData, prefix="dp"):
    """Buttons of a deal post (bot.posts). Ids only; everything is checked again on the
    server."""

    action: Word  # join | qty | cancel | share | info
    deal_id: Id
    qty: Quantity = 0


class WaitlistCB(CallbackData, prefix="wl"):
    """Join waitlist on the post of a sold-out paid deal (bot.posts): the deal only; the
    chat it was tapped in is checked again on the server."""

    deal_id: Id


class EventCB(CallbackData, prefix="ev"):
    """Join / Cancel my place on an offline event's post (handlers.gatherings): the deal
    only; the chat it was tapped in is checked again on the server."""

    action: Word  # join | cancel
    deal_id: Id


class CardCB(CallbackData, prefix="ic"):
    """Buttons of a deal card sent through inline mode (into any chat): the share code names
    the deal, the group its orders count in and the member who shared the card."""

    action: Word  # join | qty | cancel | info
    code: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
    qty: Quantity = 0


class TeamCB(CallbackData, prefix="tm"):
    """Team buys (handlers.teams): "start" on a deal's post or private card (`id`: the
    deal; `group_id`: the group of a private card, 0 on a group post), "join" and "leave"
    on a team's card (`id`: the team)."""

    action: Word  # start | join | leave
    id: Id
    group_id: IdOrNone = 0


class BargainCB(CallbackData, prefix="bg"):
    """Bargains (handlers.bargains): "start" on a deal's post or private card (`id`: the
    deal; `group_id`: the group of a private card, 0 on a group post), "help" and "buy" on
    a bargain's page (`id`: the bargain)."""

    action: Word  # start | help | buy
    id: Id
    group_id: IdOrNone = 0


class CouponCB(CallbackData, prefix="cp"):
    """Coupons (handlers.coupons): "claim" (`id`: the coupon) in a group's /coupons or in
    private; "use" (`id`: the member's claim, 0: none) on `order`."""

    action: Word  # claim | use
    id: IdOrNone
    order: IdOrNone = 0


class PollCB(CallbackData, prefix="pl"):
    """Polls (handlers.polls): "deal" under a poll's results (`id`: the poll, `option`: the
    option's index) starts /newdeal with that option as the title."""

    action: Word  # deal
    id: Id
    option: Annotated[int, Field(ge=0, le=9)] = 0


class LotteryCB(CallbackData, prefix="lt"):
    """Lotteries (handlers.lotteries): "enter" on a lottery's post in its group, "claim" on
    a winner's note in private (`id`: the lottery)."""

    action: Word  # enter | claim
    id: Id


class PrivateDealCB(CallbackData, prefix="pdj"):
    """Join buttons under a deal shown in private (handlers.share): ids only, checked again
    on the server."""

    action: Word  # join | qty | cancel
    deal_id: Id
    group_id: Id
    qty: Quantity = 0


class InviteCB(CallbackData, prefix="inv"):
    """/invite: the group a member wants a personal invite link to."""

    group_id: Id


class InvitesCB(CallbackData, prefix="ivs"):
    """/invites: the group whose invite report an owner wants."""

    group_id: Id


class MembersCB(CallbackData, prefix="mem"):
    """/members (handlers.activity)."""

    action: Word  # open | core | list
    group_id: IdOrNone = 0
    n: CoreDays = 0


# ---------------------------------------------------------------- private: everyone


class LangCB(CallbackData, prefix="lang"):
    """/lang: the user's language."""

    code: Code


class ForgetCB(CallbackData, prefix="forget"):
    """/forgetme (handlers.privacy)."""

    action: Word  # confirm | cancel


class MyOrdersCB(CallbackData, prefix="my"):
    """/myorders (handlers.my_orders)."""

    action: Word  # page | cancel
    order_id: IdOrNone = 0
    page: Page = 0


class ReviewCB(CallbackData, prefix="rv"):
    """Reviews (handlers.reviews): "rate" an order (`id`: the order, `stars` 1–5) from the
    invitation or /reviews; "skip" the comment, "comment" (ask for one again), "remove"
    (`id`: the member's review); "reply" (`id`: a review of a deal the owner manages)."""

    action: Word  # rate | skip | comment | remove | reply
    id: Id
    stars: Annotated[int, Field(ge=0, le=5)] = 0


class MyCreditCB(CallbackData, prefix="mc"):
    """/mycredit (handlers.credit)."""

    action: Word  # use | view
    order_id: IdOrNone = 0


# ---------------------------------------------------------------- private: owners


class WizardCB(CallbackData, prefix="dw"):
    """The /newdeal wizard (handlers.deal_wizard)."""

    step: Word  # the step the button belongs to ("-" for resume / restart)
    # back | cancel | skip | keep | toggle | done | kind | pick | now | default | publish | …
    action: Word
    value: Value = ""


class OwnerDealCB(CallbackData, prefix="od"):
    """/deals in private (handlers.owner_deals)."""

    # list | open | desc | later | stock | rem | remdef | remoff | pause | resume | close |
    # cancel | cancel_yes | dup | audall | audmem
    action: Word
    deal_id: IdOrNone = 0
    page: Page = 0


class ScheduleCB(CallbackData, prefix="sw"):
    """The /schedule wizard (handlers.schedule)."""

    step: Word
    action: Word  # toggle | done | back | cancel | deal | nodeal | kind | day | save
    value: Value = ""


class ScheduleItemCB(CallbackData, prefix="si"):
    """/schedule list: one scheduled post (handlers.schedule)."""

    action: Word  # pause | resume | edit | etext | etime | egroups | delete | new | list
    post_id: IdOrNone = 0


class SettingsCB(CallbackData, prefix="set"):
    """/settings (handlers.settings)."""

    action: Word  # open | tz | cur | lang | list | cancel
    group_id: IdOrNone = 0


class GroupLangCB(CallbackData, prefix="glang"):
    """/settings: a group's language."""

    group_id: Id
    code: Code


class DigestCB(CallbackData, prefix="dg"):
    """/digest settings (handlers.digest)."""

    action: Word  # sub | unsub | on | off
    group_id: Id


class OrdersCB(CallbackData, prefix="ord"):
    """/orders (handlers.owner_orders). action: list (page of a deal's orders) | csv | xlsx |
    order (one order's card) | mark (one order to `state`) | ask (confirm marking all) |
    all (mark all to `state`) | paid (mark one order paid) | rfask (confirm a refund) |
    refund (cancel a confirmed order)."""

    action: Word
    deal_id: Id
    order_id: IdOrNone = 0
    state: Word = ""
    page: Page = 0


class PayCB(CallbackData, prefix="pay"):
    """A payment's buttons (handlers.payments). action: out (the owner refunded an owed
    card payment in the provider's dashboard)."""

    action: Word
    payment_id: Id


class CommissionCB(CallbackData, prefix="com"):
    """/commission (handlers.credit). action: list | open | pct | days | son / soff (allow /
    stop spending credit) | bal (balances) | pay (ask an amount for `user_id` in `cur`) |
    cancel."""

    action: Word
    group_id: IdOrNone = 0
    user_id: BigId = 0
    cur: Currency = ""


class ModCB(CallbackData, prefix="mod"):
    """Protection from spam (handlers.moderation): its /settings card (open, and a rule to
    change: chal | link | flood | joins) and /modlog's Undo of one logged action."""

    action: Word
    group_id: Id
    action_id: IdOrNone = 0


class ChallengeCB(CallbackData, prefix="chl"):
    """A button of a new member's challenge: the challenge's token and the button's own
    code (opaque: which one is right is known only on the server)."""

    token: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$")]
    code: Annotated[str, Field(min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")]


FACTORIES: tuple[type[CallbackData], ...] = (
    DealCB,
    PayCB,
    WaitlistCB,
    EventCB,
    PrivateDealCB,
    TeamCB,
    BargainCB,
    CouponCB,
    PollCB,
    LotteryCB,
    CardCB,
    InviteCB,
    InvitesCB,
    MembersCB,
    LangCB,
    ForgetCB,
    MyOrdersCB,
    MyCreditCB,
    ReviewCB,
    WizardCB,
    OwnerDealCB,
    ScheduleCB,
    ScheduleItemCB,
    SettingsCB,
    GroupLangCB,
    DigestCB,
    OrdersCB,
    CommissionCB,
    ModCB,
    ChallengeCB,
)
