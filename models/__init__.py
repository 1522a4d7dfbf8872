"""ORM models and the database layer (SQLite or PostgreSQL)."""

from models.base import Base
from models.db import Database, current_session
from models.deals import Deal, DealPost, Order
from models.entities import FsmState, Group, GroupAdmin, Membership, ProcessedUpdate, User

__all__ = [
    "Base",
    "Database",
    "Deal",
    "DealPost",
    "FsmState",
    "Group",
    "GroupAdmin",
    "Membership",
    "Order",
    "ProcessedUpdate",
    "User",
    "current_session",
]
