"""ORM models and the database layer (SQLite or PostgreSQL)."""

from models.base import Base
from models.coupons import Coupon, CouponClaim, CouponDeal, CouponPack, PackClaim
from models.db import Database, current_session
from models.deals import Deal, DealPost, Order
from models.delivery import OutboxMessage, SendFailure
from models.digest import DigestRun, DigestSubscription
from models.entities import FsmState, Group, GroupAdmin, Membership, ProcessedUpdate, User
from models.failures import FailedUpdate
from models.gatherings import EventCheckin, OfflineEvent
from models.growth import (
    CreditEntry,
    GroupActivityDay,
    InlineCard,
    InviteLink,
    MemberActivityDay,
    Referral,
    ShareClick,
    ShareLink,
)
from models.lotteries import Lottery, LotteryEntry, LotteryWinner
from models.moderation import Challenge, ModAction, ModAllowed, ModSettings
from models.offers import Bargain, BargainHelp, HelpDay, Team
from models.payments import Payment, WaitlistEntry
from models.polls import Poll, PollPost, PollVote
from models.reviews import Review
from models.schedule import DealReminderSent, ScheduledPost, ScheduledTarget

__all__ = [
    "Bargain",
    "Challenge",
    "BargainHelp",
    "Base",
    "Coupon",
    "CouponClaim",
    "CouponDeal",
    "CouponPack",
    "CreditEntry",
    "Database",
    "Deal",
    "DealPost",
    "DealReminderSent",
    "DigestRun",
    "DigestSubscription",
    "EventCheckin",
    "FailedUpdate",
    "FsmState",
    "Group",
    "GroupActivityDay",
    "GroupAdmin",
    "HelpDay",
    "InlineCard",
    "InviteLink",
    "Lottery",
    "LotteryEntry",
    "LotteryWinner",
    "MemberActivityDay",
    "ModAction",
    "ModAllowed",
    "ModSettings",
    "Membership",
    "OfflineEvent",
    "Order",
    "PackClaim",
    "OutboxMessage",
    "Payment",
    "Poll",
    "PollPost",
    "PollVote",
    "ProcessedUpdate",
    "Referral",
    "Review",
    "ScheduledPost",
    "ScheduledTarget",
    "SendFailure",
    "ShareClick",
    "ShareLink",
    "Team",
    "User",
    "WaitlistEntry",
    "current_session",
]
