"""An admission gate in front of the write path of joins, per process and per deal.

In a flash sale most taps can only be refused ("Sold out."), yet each one would be a full
write transaction serialised on the deal row (or on SQLite's single writer). The gate knows
the deal's committed stock left (`known`, learned from commits through the effects map and
from shared reads) and the units of the joins it let through that have not settled yet
(`reserved`, in flight).

- A tap whose units fit beside the joins in flight (reserved + units <= known) goes to the
  write path at once, with no read: the conditional UPDATE in services.orders decides.
- Otherwise the caller first reads (one read shared by every tap waiting on the deal,
  begun after the tap arrived; bot.middlewares.admission): if that committed stock cannot
  cover the tap, it is answered "Sold out." from the read. If it can, the tap `wait`s: it
  is admitted when it fits beside the joins in flight (a commit lowers `known` and settles
  its member's join at once; a join's end frees its reservation; first come, first
  served). When a commit learnt since its read leaves less committed stock than it asks
  for (`units > known`), it goes back to read again, and only that read can refuse it: in a
  flash sale the waiting taps read once more when the last unit is sold, all together.
  A second tap of a member whose join is in flight waits for that join, then goes to the
  write path, which answers it (e.g. "already in").

So a refusal is always given from committed stock read after the tap arrived; the gate's
figures (which can be stale: two commits' effects learnt out of order) only decide when to
read again. The price: a sold-out answer waits for the joins in flight to commit (refusing
earlier would mean betting that they succeed; a join refused by its handler, a member's
repeat tap or an error would make such a bet wrong). A cancel
or restock that commits later reopens the gate (a commit's stock is learned at once; a
restock by the owner is seen by the next shared read).
The database stays the only source of truth: the gate's figures decide whether to wait,
write or read again, never whether a unit is sold. Several processes sharing one database each
have their own gate. No aiogram here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Ticket:
    """What the gate decided: `admitted` (the caller runs the join; `units` are reserved
    until `leave`) or refused as sold out (`stock_left`: the units nobody has claimed)."""

    deal_id: int
    units: int
    admitted: bool = True
    stock_left: int = 0
    member: int | None = None
    left: bool = False


@dataclass
class _Waiter:
    units: int
    future: asyncio.Future[Ticket]
    member: int | None = None
    rechecked: bool = False  # queued behind the member's own join in flight
    since: int | None = None  # the epoch before its last read: "looks sold out" needs a later one


@dataclass
class _Deal:
    known: int | None = None  # committed stock left last seen (commit or read); None = unknown
    unlimited: bool = False  # the deal has no stock limit: no gating at all
    reserved: int = 0  # units of admitted joins not yet settled
    members: dict[int, list[Ticket]] = field(default_factory=dict)  # in flight, per member
    epoch: int = 0  # commits learned so far: a read begun before one is older than it
    queue: deque[_Waiter] = field(default_factory=deque)


class AdmissionGate:
    def __init__(self) -> None:
        self._deals: dict[int, _Deal] = {}

    def _deal(self, deal_id: int) -> _Deal:
        state = self._deals.get(deal_id)
        if state is None:
            state = self._deals[deal_id] = _Deal()
        return state

    def admit_now(self, deal_id: int, units: int, member: int | None = None) -> Ticket | None:
        """A ticket if the known stock has room for `units` beside the joins in flight (or
        the deal has no limit); None: read (shared), then `wait`."""
        state = self._deal(deal_id)
        if state.unlimited:
            return Ticket(deal_id, 0)
        if state.known is not None and state.reserved + units <= state.known:
            return self._reserve(state, Ticket(deal_id, units, member=member))
        return None

    def _reserve(self, state: _Deal, ticket: Ticket) -> Ticket:
        state.reserved += ticket.units
        if ticket.member is not None:
            state.members.setdefault(ticket.member, []).append(ticket)
        return ticket

    def _settle(self, state: _Deal, ticket: Ticket) -> None:
        ticket.left = True
        state.reserved = max(state.reserved - ticket.units, 0)
        if ticket.member is not None:
            mine = state.members.get(ticket.member, [])
            if ticket in mine:
                mine.remove(ticket)
            if not mine:
                state.members.pop(ticket.member, None)

    def epoch(self, deal_id: int) -> int:
        """Pass it to `learn` with what a read begun now showed."""
        return self._deal(deal_id).epoch

    def learn(
        self,
        deal_id: int,
        stock_left: int | None,
        *,
        since: int | None = None,
        member: int | None = None,
    ) -> None:
        """What a commit (since=None) or a read begun at epoch `since` showed of the deal's
        committed stock (None: unlimited). A read older than a commit learned meanwhile
        changes nothing. A commit that changed `member`'s order settles that member's join
        in flight at once: the committed stock no longer counts its units, nor do the joins
        in flight. Without a member (a refusal), the queue is looked at once the join that
        caused it has left (its units must not be counted twice)."""
        state = self._deal(deal_id)
        if since is None:
            state.epoch += 1
        elif since != state.epoch:
            return
        state.unlimited = stock_left is None
        state.known = stock_left
        mine = state.members.get(member) if member is not None else None
        if mine:
            self._settle(state, mine[0])
        if since is None and member is None and state.queue:
            try:
                asyncio.get_running_loop().call_soon(self._pump, state, deal_id)
                return
            except RuntimeError:  # no loop running: nobody can be waiting on a future
                pass
        self._pump(state, deal_id)

    async def wait(
        self, deal_id: int, units: int, member: int | None = None, *, since: int | None = None
    ) -> Ticket:
        """For a tap of a new participant (checked by a read: no order, within the limit,
        the deal open), once the gate has committed stock seen after the tap arrived:
        admitted, or refused as sold out (see the module's rule)."""
        state = self._deal(deal_id)
        future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(
            units, future, member, member is not None and member in state.members, since
        )
        state.queue.append(waiter)
        self._pump(state, deal_id)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave(future.result())  # admitted just as we were cancelled
            else:
                try:
                    state.queue.remove(waiter)
                except ValueError:
                    pass
                self._pump(state, deal_id)  # those behind it may now be served
            raise

    def leave(self, ticket: Ticket) -> None:
        """The admitted join is over (committed, refused or failed): free its reservation."""
        if ticket.left or not ticket.admitted:
            return
        state = self._deal(ticket.deal_id)
        self._settle(state, ticket)
        self._pump(state, ticket.deal_id)

    def _pump(self, state: _Deal, deal_id: int) -> None:
        """Decide every queued tap that can be decided now, first come first served."""
        if not state.queue:
            return
        keep: deque[_Waiter] = deque()
        for waiter in state.queue:
            future = waiter.future
            if future.done():
                continue
            units = waiter.units
            known = state.known
            if state.unlimited:
                future.set_result(Ticket(deal_id, 0))
            elif waiter.member is not None and waiter.member in state.members:
                keep.append(waiter)  # the member's own join is in flight: its outcome decides
            elif waiter.rechecked:  # the member's join was in flight: the write path decides
                future.set_result(Ticket(deal_id, 0))
            elif known is None:  # not learnt yet (cannot happen after a read): keep waiting
                keep.append(waiter)
            elif state.reserved + units <= known:
                ticket = Ticket(deal_id, units, member=waiter.member)
                future.set_result(self._reserve(state, ticket))
            elif units > known and (waiter.since is None or state.epoch > waiter.since):
                # the committed stock learnt since its read cannot cover it: read again
                future.set_result(Ticket(deal_id, 0, admitted=False, stock_left=max(known, 0)))
            else:
                keep.append(waiter)  # the joins in flight decide: wait for them
        state.queue = keep

    def in_flight(self, deal_id: int) -> int:
        state = self._deals.get(deal_id)
        return state.reserved if state else 0

    def waiting(self, deal_id: int) -> int:
        state = self._deals.get(deal_id)
        return len(state.queue) if state else 0

    def known(self, deal_id: int) -> int | None:
        state = self._deals.get(deal_id)
        return state.known if state else None
