"""The map of the bot: routers in the order they are tried.

Each call builds fresh routers, so several Dispatchers can live in one process (tests,
benchmarks, two instances sharing a database).

The handler modules are imported when the routers are built, not with the package: modules
outside it (bot.posts) use `handlers.callbacks` and are themselves used by handlers.
"""

from __future__ import annotations

from aiogram import Router


def build_routers() -> list[Router]:
    from handlers import (
        activity,
        bargains,
        coupons,
        credit,
        deal_post,
        deal_wizard,
        digest,
        errors,
        gatherings,
        groups,
        inline,
        invites,
        lotteries,
        moderation,
        my_orders,
        owner_deals,
        owner_orders,
        payments,
        polls,
        privacy,
        reviews,
        schedule,
        settings,
        share,
        start,
        status,
        teams,
    )

    return [
        errors.router(),  # first: whatever a handler raised is answered (and logged) here
        payments.router(),  # pre-checkout, successful payments (before any form's state),
        # /terms, /paysupport
        moderation.router(),  # anti-spam: flagged group messages, challenges, /modlog, /allow
        groups.router(),  # my_chat_member, chat_member, migrations, group /help and /settings
        deal_wizard.router(),  # private /newdeal wizard (state before the generic handlers)
        owner_deals.router(),  # private /deals: the owner's deals and their actions
        schedule.router(),  # private /schedule: the content calendar (wizard and list)
        settings.router(),  # private /settings wizard
        invites.router(),  # /invite, /invites, /start inv_<group> (invite links)
        teams.router(),  # team buys: Start a team, Join / Leave, /start team_<code>, /teambuy
        bargains.router(),  # bargains: ✂️ Bargain, Help / Buy, /start bargain_<code>,
        # /bargain, /bargains
        coupons.router(),  # /coupon (owners), /coupons, Claim / Use, /start pack_<code>
        polls.router(),  # /poll, /polls (owners), poll_answer and poll updates, Start a deal
        lotteries.router(),  # /lottery (owners), Enter on a lottery's post, Claim a prize
        gatherings.router(),  # offline events: Join / Cancel my place on an event's post,
        # private /event (owners), /checkin CODE and /start ci_<code> (a scanned ticket)
        share.router(),  # /start <share code> and deal_<id>: a deal in private, Join buttons
        deal_post.router(),  # deal posts in groups: buttons, /buy, /cancel, /deals
        inline.router(),  # inline mode: @bot search, chosen cards, taps on cards in any chat
        digest.router(),  # private /digest: digests on demand and their settings
        owner_orders.router(),  # private /orders, exports, fulfilment, /pickup (owners)
        my_orders.router(),  # private /myorders (members)
        reviews.router(),  # private: rate an order (stars), its comment, /reviews, the
        # owner's /reviews D17 and Reply
        credit.router(),  # private /commission (owners: rates, payouts) and /mycredit (members)
        privacy.router(),  # private /mydata (export) and /forgetme (delete, anonymise)
        activity.router(),  # group /top, /hideme and /showme, private /members (owners)
        status.router(),  # private /status (operators: delivery figures, next due items)
        start.router(),  # private /start, /lang, /help
        start.fallback_router(),  # private: unknown commands and stray text get a hint; any
        # button no handler took (forged, out of range, old) is answered "out of date"
    ]
