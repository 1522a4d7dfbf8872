"""The effects map: everything a domain event causes, in one place.

Services record events (services.events) in the unit of work; once the transaction has
committed, models.db hands them to `Effects.__call__`, which runs the handlers listed for
each event type in `EFFECTS`. Effects are in-memory reactions of this process (edit the
sign-up list soon, tell the admission gate the stock, count a sign-up, wake the outbox
sender); none of them is a promise to a person: those are outbox rows written before the
commit (services.outbox), so a crash after the commit loses nothing. Each effect is
synchronous and quick (it schedules work, never awaits it); one failing never stops the
others.

    OrderChanged    → post refresh, admission gate, sign-up count
    DealOpened      → publish the deal's posts
    DealChanged     → post refresh
    DealClosed      → post refresh (final state, no buttons)
    MemberJoined    → join count        MemberLeft → leave count
    MemberForgotten → forget in memory (activity buffer, sender, locale cache); the deals the
                      member ordered in get DealChanged from services.privacy (posts re-render)
    NoticesPromised → wake the outbox sender
    RulesChanged    → the group's anti-spam rules read again (bot/moderation.py)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.events import (
    DealChanged,
    DealClosed,
    DealOpened,
    Event,
    MemberForgotten,
    MemberJoined,
    MemberLeft,
    NoticesPromised,
    OrderChanged,
    OrderDenied,
    RulesChanged,
)

if TYPE_CHECKING:
    from bot.i18n import LocaleCache
    from bot.moderation import ModerationGate
    from bot.outbox import OutboxSender
    from bot.posts import PostRefresher
    from bot.sender import Sender
    from services.activity import ActivityBuffer
    from services.admission import AdmissionGate

log = logging.getLogger(__name__)


@dataclass
class Effects:
    posts: PostRefresher
    gate: AdmissionGate
    activity: ActivityBuffer
    outbox: OutboxSender
    sender: Sender
    locales: LocaleCache
    moderation: ModerationGate | None = None

    def __call__(self, happened: list[Event]) -> None:
        for event in happened:
            for effect in EFFECTS.get(type(event), ()):
                try:
                    effect(self, event)
                except Exception:
                    log.exception("effect %s of %s failed", effect.__name__, event)


def refresh_post(fx: Effects, event: OrderChanged | DealChanged | DealClosed) -> None:
    fx.posts.touch(event.deal_id)


def refresh_if_changed(fx: Effects, event: OrderChanged) -> None:
    if event.old_quantity != event.new_quantity:
        fx.posts.touch(event.deal_id)


def teach_gate(fx: Effects, event: OrderChanged | OrderDenied) -> None:
    """The stock left after a change (a cancel reopens the gate) or a sold-out refusal."""
    fx.gate.learn(event.deal_id, event.stock_left, member=getattr(event, "user_id", None))


def count_signup(fx: Effects, event: OrderChanged) -> None:
    if event.signed_up and event.chat_id is not None:
        fx.activity.record_signup(event.chat_id, event.user_id, event.at)


def publish(fx: Effects, event: DealOpened) -> None:
    fx.posts.publish_soon(event.deal_id)


def count_join(fx: Effects, event: MemberJoined) -> None:
    fx.activity.record_join(event.chat_id, event.user_id, event.at)


def count_leave(fx: Effects, event: MemberLeft) -> None:
    fx.activity.record_leave(event.chat_id, event.user_id, event.at)


def forget(fx: Effects, event: MemberForgotten) -> None:
    fx.activity.forget_user(event.user_id)
    fx.sender.forget_user(event.user_id)
    fx.locales.forget_user(event.user_id)


def wake_outbox(fx: Effects, _event: NoticesPromised) -> None:
    fx.outbox.kick()


def reread_rules(fx: Effects, event: RulesChanged) -> None:
    if fx.moderation is not None:
        fx.moderation.forget(event.chat_id)


EFFECTS: dict[type[Event], tuple[Callable[[Effects, Event], None], ...]] = {
    OrderChanged: (refresh_if_changed, teach_gate, count_signup),
    OrderDenied: (teach_gate,),
    DealOpened: (publish,),
    DealChanged: (refresh_post,),
    DealClosed: (refresh_post,),
    MemberJoined: (count_join,),
    MemberLeft: (count_leave,),
    MemberForgotten: (forget,),
    NoticesPromised: (wake_outbox,),
    RulesChanged: (reread_rules,),
}
