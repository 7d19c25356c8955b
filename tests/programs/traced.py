"""A program that records parts of itself with probe's in-process API.

Run as `python traced.py OUT.json DB`: each scenario's query results go into OUT.json,
for tests/test_session.py to check.
"""

import asyncio
import json
import subprocess
import sys
import threading

import probe

out_path, db = sys.argv[1], sys.argv[2]
results = {}


def helper(x):
    if x % 2:
        return x * 3
    return x


def untraced(n):
    return [helper(i) for i in range(n)]


@probe.trace(analysis=["hotness", "calls"], counters=["task-clock"])
def solve(n):
    total = 0
    for i in range(n):
        total += helper(i)
    return total


@probe.trace
def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


@probe.trace
def numbers(n):
    for i in range(n):
        yield helper(i)


@probe.trace
async def later(n):
    await asyncio.sleep(0)
    return helper(n)


class Box:
    @probe.trace
    def method(self, n):
        return helper(n)

    @probe.trace
    @staticmethod
    def static(n):
        return helper(n)


def lines_of(s, func):
    rows = s.query(
        "SELECT s.line, c.count FROM counts c JOIN sites s USING (run_id, site_id) "
        "WHERE run_id = ? AND s.kind = 'line' AND s.func = ? ORDER BY 1",
        [s.run_id, func],
    ).fetchall()
    return {str(line): count for line, count in rows}


def entries(s):
    rows = s.query(
        "SELECT s.func, c.count FROM counts c JOIN sites s USING (run_id, site_id) "
        "WHERE run_id = ? AND s.kind = 'func' ORDER BY 1",
        [s.run_id],
    ).fetchall()
    return dict(rows)


# Idle: decorated calls while nothing records leave no trace.
results["idle"] = [solve(3), fact(4), list(numbers(3)), asyncio.run(later(3)), Box().method(2)]

# A session without analyses: the decorated call trees only, with the analyses they ask for.
with probe.session(db=db) as s:
    untraced(6)  # not in any decorated tree: not recorded
    solve(5)
    fact(5)
    list(numbers(4))
    asyncio.run(later(3))
    Box().method(7)
    Box.static(8)
    threads = [threading.Thread(target=solve, args=(4,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
results["gated"] = {
    "analyses": s.query("SELECT analyses FROM runs WHERE run_id = ?", [s.run_id]).fetchall()[0][0],
    "entries": entries(s),
    "helper": lines_of(s, "helper"),
    "untraced": lines_of(s, "untraced"),
    "contexts": dict(
        s.query(
            "SELECT context, sum(count) FROM context_counts c JOIN sites USING (run_id, site_id)"
            " WHERE run_id = ? AND kind = 'func' AND func = 'helper' GROUP BY 1",
            [s.run_id],
        ).fetchall()
    ),
    "counters": s.query(
        "SELECT region, event, calls, status, value > 0 FROM counters WHERE run_id = ?"
        " AND event = 'task-clock'",
        [s.run_id],
    ).fetchall(),
    "edges": sorted(
        s.query(
            "SELECT caller, callee, calls FROM call_edges WHERE run_id = ?", [s.run_id]
        ).fetchall()
    ),
}

# Sessions with analyses of their own record everything in scope; they nest.
with probe.session("hotness", db=db) as outer:
    untraced(3)
    with probe.session("coverage", db=db) as inner:
        untraced(2)
    untraced(1)
results["nested"] = {
    "outer": lines_of(outer, "helper"),
    "inner": lines_of(inner, "helper"),
    "runs": [outer.run_id != inner.run_id, len(outer.table("counts")) > 0],
    "inner_rows_only": set(inner.table("sites")["run_id"].to_pylist()) == {inner.run_id},
}

# start()/stop(), and errors said in one line.
s2 = probe.session("coverage", db=db)
errors = []
try:
    s2.query("SELECT 1")
except Exception as e:  # noqa: BLE001
    errors.append(f"{type(e).__name__}: {e}")
s2.start()
helper(1)
try:
    s2.table("counts")
except Exception as e:  # noqa: BLE001
    errors.append(f"{type(e).__name__}: {e}")
s2.stop()
try:
    s2.table("no_such_table")
except Exception as e:  # noqa: BLE001
    errors.append(f"{type(e).__name__}: {e}")
results["errors"] = errors
results["start_stop"] = lines_of(s2, "helper")

# close() lets another process at the database.
s2.close()
seen = subprocess.run(
    [sys.executable, "-m", "probe", "query", "--db", db, "--format", "csv",
     "SELECT count(*) FROM runs"],
    capture_output=True, text=True, timeout=120,
)
results["closed"] = seen.stdout.split()[-1] if seen.returncode == 0 else seen.stderr
with open(out_path, "w") as f:
    json.dump(results, f)
