"""An admission gate in front of the write path of joins, per process and per deal.

In a flash sale most taps can only be refused ("Sold out."), yet each one would be a full
write transaction serialised on the deal row (or on SQLite's single writer). The gate lets at
most the known remaining stock of units be in flight as joins at once; other taps queue. When
nothing is in flight and the queued taps cannot fit, each queued tap is released to *probe*:
the caller re-checks with a cheap read (stock left, whether this member already holds an
order) and either answers "Sold out." without writing or comes back to the gate.

The database stays the only source of truth: the conditional UPDATE in services.orders still
decides, and the gate's figures are only hints (updated from commits and reads) that decide
whether to wait, write or read. A stale hint costs a read or a refused write, never a wrong
answer: a sold-out answer is always given from a fresh read. Several processes sharing one
database each have their own gate. No aiogram here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Ticket:
    """Returned by AdmissionGate.enter: `probe` says the caller must re-check with a read
    before writing (then call `enter` again with its outcome, or refuse); otherwise `units`
    are reserved until `leave`."""

    deal_id: int
    units: int
    probe: bool = False
    lead: bool = False  # the one probe learning an unknown stock for everyone
    left: bool = False


@dataclass
class _Deal:
    known: int | None = None  # last stock_left seen (commit or read); None = unknown
    unlimited: bool = False  # the deal has no stock limit: no gating at all
    reserved: int = 0  # units of admitted joins not yet settled
    probing: bool = False  # a probe is learning the stock (only when unknown)
    queue: deque[tuple[int, asyncio.Future[Ticket]]] = field(default_factory=deque)


class AdmissionGate:
    def __init__(self) -> None:
        self._deals: dict[int, _Deal] = {}

    def _deal(self, deal_id: int) -> _Deal:
        state = self._deals.get(deal_id)
        if state is None:
            state = self._deals[deal_id] = _Deal()
        return state

    async def enter(self, deal_id: int, units: int) -> Ticket:
        """Wait for room for `units` more units of a join of this deal. A ticket with
        probe=True reserves nothing (the caller reads, then `learn`s and retries)."""
        state = self._deal(deal_id)
        ticket = self._try(state, deal_id, units)
        if ticket is not None:
            return ticket
        future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        state.queue.append((units, future))
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave(future.result())  # admitted just as we were cancelled
            else:
                try:
                    state.queue.remove((units, future))
                except ValueError:
                    pass
            raise

    def _try(self, state: _Deal, deal_id: int, units: int) -> Ticket | None:
        if state.unlimited:
            return Ticket(deal_id, 0)
        if state.known is not None and state.reserved + units <= state.known:
            state.reserved += units
            return Ticket(deal_id, units)
        if state.reserved > 0 or state.probing:
            return None  # wait: joins in flight (or a probe) will tell more
        if state.known is None:
            state.probing = True  # single flight: one read learns the stock for all
            return Ticket(deal_id, 0, probe=True, lead=True)
        return Ticket(deal_id, 0, probe=True)

    def learn(self, deal_id: int, stock_left: int | None, *, probe: Ticket | None = None) -> None:
        """What a commit, a refusal or a read showed of the deal's stock (None: unlimited).
        Pass the probe ticket that made the read, if any."""
        state = self._deal(deal_id)
        if probe is not None and probe.probe and not probe.left:
            probe.left = True
            if probe.lead:
                state.probing = False
        state.unlimited = stock_left is None
        state.known = stock_left
        self._pump(state, deal_id)

    def abandon(self, ticket: Ticket) -> None:
        """A probe that failed (e.g. the read raised): let the others try."""
        if ticket.probe and not ticket.left:
            ticket.left = True
            state = self._deal(ticket.deal_id)
            if ticket.lead:
                state.probing = False
            self._pump(state, ticket.deal_id)

    def leave(self, ticket: Ticket) -> None:
        """The admitted join is over (committed, refused or failed): free its reservation."""
        if ticket.probe:
            self.abandon(ticket)
            return
        if ticket.left:
            return
        ticket.left = True
        state = self._deal(ticket.deal_id)
        state.reserved = max(state.reserved - ticket.units, 0)
        self._pump(state, ticket.deal_id)

    def _pump(self, state: _Deal, deal_id: int) -> None:
        """Admit the queued taps that now fit; when none is in flight and the rest cannot
        fit, release them all to probe (each reads for itself)."""
        if not state.queue:
            return
        waiting = [(u, f) for u, f in state.queue if not f.done()]
        state.queue.clear()
        keep: deque[tuple[int, asyncio.Future[Ticket]]] = deque()
        for units, future in waiting:
            if state.probing:
                keep.append((units, future))
                continue
            ticket = self._try(state, deal_id, units)
            if ticket is None:
                keep.append((units, future))
            else:
                future.set_result(ticket)
        state.queue = keep

    def in_flight(self, deal_id: int) -> int:
        state = self._deals.get(deal_id)
        return state.reserved if state else 0

    def waiting(self, deal_id: int) -> int:
        state = self._deals.get(deal_id)
        return len(state.queue) if state else 0
