"""`make test`: the whole suite, its SQLite and its PostgreSQL/Redis halves side by side.

Without TEST_POSTGRES_URL (a user's machine) this is plain `pytest`: every database test
runs on SQLite and the PostgreSQL variants say why they are skipped. With it (CI), the tests
are split by their ids into two disjoint halves, `postgres or redis` and the rest, run as
two pytest processes at once (two cores: the SQLite tests mostly wait on the CPU, the
PostgreSQL tests on the server). The SQLite half prints as it goes, the other half's output
when it ends; the run fails if either half fails or collects no test. With a `-k` of your
own in the arguments, one pytest runs as asked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

HALVES = {
    "sqlite": "not postgres and not redis",
    "postgres": "postgres or redis",
}


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", *argv]
    if not os.environ.get("TEST_POSTGRES_URL") or "-k" in argv:
        return subprocess.call(pytest)  # one process (a -k of your own selects as given)
    running = []
    for number, (name, expression) in enumerate(HALVES.items()):
        log = None if number == 0 else tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        process = subprocess.Popen(
            [*pytest, "-k", expression], stdout=log, stderr=subprocess.STDOUT if log else None
        )
        running.append((name, process, log))
    # a half that collects nothing fails the whole suite; with test paths of your own, one
    # half may well have none
    chosen = any(os.path.exists(arg.split("::")[0]) for arg in argv)
    passing = {0, 5} if chosen else {0}
    failed = []
    for name, process, log in running:  # the first half prints as it goes, the other after
        code = process.wait()
        if log is not None:
            log.seek(0)
            sys.stdout.write(log.read())
        print(f"===== tests: {name} half (-k {HALVES[name]!r}): exit {code} =====", flush=True)
        if code not in passing:
            failed.append(name)
    if failed:
        print(f"tests: failed halves: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
