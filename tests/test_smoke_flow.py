"""A first end-to-end look: the bot is added to a group, the owner sets it up privately."""

from __future__ import annotations

from sqlalchemy import select

from models import Group, GroupAdmin, User
from tests.builders import group, person


async def test_added_to_group_then_start(harness) -> None:
    owner = person(501, "Alice")
    chat = group(-1001000000123, "Fruit Lovers")
    harness.api.set_admins(chat.id, owner)

    await harness.feed(harness.updates.my_chat_member(chat, owner, "left", "administrator"))

    async with harness.db.read() as session:
        g = await session.scalar(select(Group).where(Group.chat_id == chat.id))
        admins = (await session.scalars(select(GroupAdmin))).all()
    assert g is not None and g.is_active and g.title == "Fruit Lovers"
    assert [(a.user_id, a.status) for a in admins] == [(501, "creator")]
    assert any("Fruit Lovers" in t for t in harness.api.texts(chat.id))

    harness.api.clear()
    await harness.send(owner, "/start")
    reply = harness.last(owner).text
    assert "Fruit Lovers" in reply and "owner" in reply
    async with harness.db.read() as session:
        assert (await session.get(User, 501)).started is True
