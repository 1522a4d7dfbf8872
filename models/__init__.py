"""ORM models and the database layer (SQLite or PostgreSQL)."""

from models.base import Base
from models.coupons import Coupon, CouponClaim, CouponDeal, CouponPack, PackClaim
from models.db import Database, current_session
from models.deals import Deal, DealPost, Order
from models.delivery import OutboxMessage, SendFailure
from models.digest import DigestRun, DigestSubscription
from models.entities import FsmState, Group, GroupAdmin, Membership, ProcessedUpdate, User
from models.failures import FailedUpdate
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
from models.moderation import Challenge, ModAction, ModAllowed, ModSettings
from models.offers import Bargain, BargainHelp, HelpDay, Team
from models.payments import Payment, WaitlistEntry
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
    "FailedUpdate",
    "FsmState",
    "Group",
    "GroupActivityDay",
    "GroupAdmin",
    "HelpDay",
    "InlineCard",
    "InviteLink",
    "MemberActivityDay",
    "ModAction",
    "ModAllowed",
    "ModSettings",
    "Membership",
    "Order",
    "PackClaim",
    "OutboxMessage",
    "Payment",
    "ProcessedUpdate",
    "Referral",
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
