"""`python -m bot verify-lottery`: re-check a lottery's draw from its published values only
(no database, no Telegram; services.lottery_draw documents the recipe).

    python -m bot verify-lottery --commitment HEX --secret HEX --entries tickets.txt \\
        --winners N [--entries-hash HEX] [--draws M]

Prints the number of entries, their recomputed hash (and whether it matches the published
one, when given), whether the secret matches the commitment, and the tickets drawn in order
(the first N are the winners, further ones the redraws, up to M draws). Exit code 0 when
everything matches, 1 on a mismatch, 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services import lottery_draw


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot verify-lottery",
        description="Re-check a Tuan lottery draw from its published values.",
    )
    parser.add_argument("--commitment", required=True, help="the commitment posted first")
    parser.add_argument("--secret", required=True, help="the secret revealed at the draw")
    parser.add_argument(
        "--entries",
        required=True,
        help="the posted ticket list (a file, one per line; - for stdin)",
    )
    parser.add_argument("--winners", required=True, type=int, help="the number of winners")
    parser.add_argument("--entries-hash", help="the entries hash posted at the closing")
    parser.add_argument(
        "--draws", type=int, help="how many draws to show (winners plus redraws; default: winners)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commitment = args.commitment.strip().lower()
    secret = args.secret.strip().lower()
    if not lottery_draw.is_hex(secret, 64) or not lottery_draw.is_hex(commitment, 64):
        print(
            "verify-lottery: the secret and the commitment are 64 hex characters", file=sys.stderr
        )
        return 2
    if args.winners < 1 or (args.draws is not None and args.draws < args.winners):
        print(
            "verify-lottery: --winners is at least 1, --draws at least --winners", file=sys.stderr
        )
        return 2
    try:
        text = sys.stdin.read() if args.entries == "-" else Path(args.entries).read_text("utf-8")
        tickets = lottery_draw.parse_entries(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"verify-lottery: cannot read the entries: {exc}", file=sys.stderr)
        return 2
    ok = True
    hashed = lottery_draw.entries_hash(tickets)
    print(f"entries: {len(tickets)}")
    line = f"entries hash: {hashed}"
    if args.entries_hash:
        same = args.entries_hash.strip().lower() == hashed
        ok &= same
        line += " (matches the published hash)" if same else " (MISMATCH with the published hash)"
    print(line)
    committed = lottery_draw.commitment_of(secret) == commitment
    ok &= committed
    print("commitment: " + ("ok, the secret matches it" if committed else "MISMATCH"))
    draws = lottery_draw.draw(secret, tickets, args.draws or args.winners)
    print("drawn in order:")
    for seq, ticket in enumerate(draws, start=1):
        role = "winner" if seq <= args.winners else "redraw"
        print(f"{seq}. {ticket} ({role})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
