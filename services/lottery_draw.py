"""The lottery draw as pure functions (no database, no Telegram): what the bot publishes,
and what anyone can recompute from it (README, "Lotteries").

The published values, all lowercase hexadecimal:

- the secret: 32 random bytes, written as 64 hex characters (`new_secret`); kept by the bot
  until the draw;
- the commitment, posted when the lottery is announced: SHA-256 of the secret's 64 hex
  characters (as ASCII text): `printf '%s' SECRET | sha256sum`;
- the entry list, posted when entries close: each entry's ticket code (8 hex characters),
  sorted, one per line, each line ending in "\\n" (`entries_text`);
- the entries hash, posted with it: SHA-256 of that text: `sha256sum tickets.txt`;
- the draw: for k = 0, 1, 2, …: h_k = SHA-256 of the ASCII text "SECRET:ENTRIES_HASH:k"
  (k in decimal), read as a big-endian integer; the k-th winner is the ticket at index
  h_k mod r of the sorted tickets not drawn yet (r of them), which is then removed. The first
  N are the winners; a winner who does not claim in time is replaced by the next k, so a
  redraw uses the same published inputs.
"""

from __future__ import annotations

import hashlib
import re
import secrets

SECRET_BYTES = 32
TICKET_LENGTH = 8
_HEX = re.compile(r"[0-9a-f]+")


def new_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def new_ticket() -> str:
    return secrets.token_hex(TICKET_LENGTH // 2)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def commitment_of(secret: str) -> str:
    """The commitment published before any entry: SHA-256 of the secret's hex text."""
    return sha256_hex(secret)


def is_hex(text: str, length: int | None = None) -> bool:
    return bool(_HEX.fullmatch(text)) and (length is None or len(text) == length)


def is_ticket(text: str) -> bool:
    return is_hex(text, TICKET_LENGTH)


def entries_text(tickets: list[str]) -> str:
    """The published entry list: the tickets sorted, one per line, each ending in a newline
    (no entries: the empty text)."""
    return "".join(t + "\n" for t in sorted(tickets))


def parse_entries(text: str) -> list[str]:
    """The tickets of a published list (blank lines and surrounding spaces ignored), sorted.
    ValueError for anything that is not a ticket code, or a ticket listed twice."""
    tickets = [line.strip().lower() for line in text.splitlines() if line.strip()]
    bad = [t for t in tickets if not is_ticket(t)]
    if bad:
        raise ValueError(f"not a ticket code: {bad[0][:20]!r}")
    if len(set(tickets)) != len(tickets):
        raise ValueError("a ticket is listed twice")
    return sorted(tickets)


def entries_hash(tickets: list[str]) -> str:
    return sha256_hex(entries_text(tickets))


def step_hash(secret: str, hashed_entries: str, k: int) -> int:
    return int(sha256_hex(f"{secret}:{hashed_entries}:{k}"), 16)


def draw(secret: str, tickets: list[str], count: int) -> list[str]:
    """The first `count` tickets drawn (at most all of them), in the order drawn: distinct,
    and a function of the secret and the sorted list only."""
    remaining = sorted(tickets)
    hashed = entries_hash(remaining)
    drawn: list[str] = []
    k = 0
    while remaining and k < count:
        index = step_hash(secret, hashed, k) % len(remaining)
        drawn.append(remaining.pop(index))
        k += 1
    return drawn
