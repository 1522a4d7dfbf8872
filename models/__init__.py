"""ORM models and the database layer (SQLite or PostgreSQL)."""

from models.base import Base
from models.db import Database, current_session
from models.deals import Deal, DealPost, Order
from models.delivery import SendFailure
from models.entities import FsmState, Group, GroupAdmin, Membership, ProcessedUpdate, User
from models.schedule import DealReminderSent, ScheduledPost, ScheduledTarget

__all__ = [
    "Base",
    "Database",
    "Deal",
    "DealReminderSent",
    "DealPost",
    "FsmState",
    "Group",
    "GroupAdmin",
    "Membership",
    "Order",
    "ProcessedUpdate",
    "ScheduledPost",
    "ScheduledTarget",
    "SendFailure",
    "User",
    "current_session",
]
