"""Acceptance: `sprig run` is killed with SIGKILL while writing continuously and restarted;
the database opens, `store verify` passes, and every batch reported durable before the
kill is there.

Three cycles, each: `sprig run --demo --demo-rate 500 --json` (4 generators, ~2000
points/s), its stdout read line by line by a thread; SIGKILL after a random 2-3 s. Every
line that comes out of the pipe was written before the process died, so a {"durable":N}
line among them means batch N was committed before the kill. Then:
  - `sprig store verify` exits 0 (run first, so sprig itself is what opens the file
    left by the crash);
  - every node point printed with batch <= N is in history, by (node, type, key, time)
    with its value (but local points: counters and states of this instance, such as a
    rule's runs, which have no history), and every edge point in edge_points (time >=);
  - for each (node, type, key), the points table holds the newest durable point or a
    newer one (time >=; same value when the time is the same);
  - `sprig run` restarts on the database, streams for ~1 s, and SIGTERM exits 0.
"""
import os
import random
import signal
import subprocess
import time

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import (sprig_binary, DEMO_GENERATORS, Harness, check, db_query, is_demo_value, main,
                       parse_json_lines, rfc3339_ns, same_value)

CYCLES = 3


def local_points(types):
    """{(node type, point type)} of the schema's local points, from `sprig schema show`."""
    out = set()
    for t in types:
        r = subprocess.run([sprig_binary(), "schema", "show", t], capture_output=True,
                           text=True, timeout=30)
        for line in r.stdout.splitlines():
            cols = line.split()
            if len(cols) > 5 and "local" in cols[5].split(","):
                out.add((t, cols[0]))
    return out


def check_durable(db, pts, durable_max, cycle):
    dur = [o for o in pts if o["batch"] <= durable_max]
    check(dur, "cycle %d: no point belongs to a batch reported durable (max durable %d)"
          % (cycle, durable_max))
    hist = {}
    for n, t, k, tm, v in db_query(db, "SELECT s.node, s.type, s.key, h.time, h.value FROM history h JOIN series s ON s.id = h.series"):
        hist[(n, t, k, tm)] = v
    points = {(n, t, k): (tm, v) for n, t, k, tm, v in
              db_query(db, "SELECT node, type, key, time, value FROM points")}
    edge_points = {(u, d, t, k): (tm, v) for u, d, t, k, tm, v in
                   db_query(db, "SELECT up, down, type, key, time, value FROM edge_points")}

    node_types = dict(db_query(db, "SELECT id, type FROM nodes"))
    local = local_points(set(node_types.values()))
    missing, newest, edge_bad = [], {}, []
    for o in dur:
        ns = rfc3339_ns(o["time"])
        if "up" in o:
            got = edge_points.get((o["up"], o["node"], o["type"], o["key"]))
            if got is None or got[0] < ns:
                edge_bad.append((o, got))
            continue
        key = (o["node"], o["type"], o["key"])
        if (node_types.get(o["node"]), o["type"]) in local:
            continue
        v = hist.get(key + (ns,))
        if v is None or not same_value(o["value"], v):
            missing.append((o, v))
        if key not in newest or ns > newest[key][0]:
            newest[key] = (ns, o)
    check(not missing,
          "cycle %d: %d of %d durable points (batch <= %d) are not in history after SIGKILL, "
          "e.g. %r" % (cycle, len(missing), len(dur), durable_max, missing[:3]))
    check(not edge_bad, "cycle %d: %d durable edge points are missing or older in edge_points,"
          " e.g. %r" % (cycle, len(edge_bad), edge_bad[:3]))
    stale = []
    for key, (ns, o) in newest.items():
        got = points.get(key)
        if got is None or got[0] < ns or (got[0] == ns and not same_value(o["value"], got[1])):
            stale.append((key, ns, o["value"], got))
    check(not stale, "cycle %d: the points table lost the newest durable point of %d keys, "
          "e.g. (key, durable time, value, stored (time, value)) %r"
          % (cycle, len(stale), stale[:3]))
    return len(dur)


def test():
    seed = int(os.environ.get("SPRIG_IT_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    print("random seed %d (set SPRIG_IT_SEED to repeat the kill delays)" % seed)
    with Harness("crash") as h:
        db = h.path("crash.db")
        for cycle in range(1, CYCLES + 1):
            p = h.start("run", "--db", db, "--demo", "--demo-rate", "500", "--json",
                        name="kill%d" % cycle)
            p.wait_for(lambda ls: any(ln.startswith('{"durable"') for ln in ls), 10,
                       "cycle %d: a first {\"durable\":N} line" % cycle)
            delay = rng.uniform(2.0, 3.0)
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                check(p.alive(), "cycle %d: sprig run exited by itself before the kill\n%s"
                      % (cycle, p.stderr_tail()))
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            seen_before = p.line_count()
            p.send(signal.SIGKILL)
            rc = p.wait(10)
            check(rc == -signal.SIGKILL, "cycle %d: sprig run ended with %r, not by SIGKILL"
                  % (cycle, rc))
            lines = p.lines()
            pts, durable = parse_json_lines(lines)
            check(durable, "cycle %d: no {\"durable\":N} line in %d lines" % (cycle, len(lines)))
            check(durable == sorted(durable), "cycle %d: durable lines out of order: %r"
                  % (cycle, durable[-10:]))
            values = [o for o in pts if is_demo_value(o)]
            gens = {o["node"] for o in values}
            check(gens == set(DEMO_GENERATORS), "cycle %d: values came from %r only"
                  % (cycle, sorted(gens)))
            check(len(values) > 1000, "cycle %d: only %d value points in %.1f s at 4 x 500 Hz"
                  % (cycle, len(values), delay))

            v = h.verify(db)
            check(v.returncode == 0 and "ok" in v.stdout,
                  "cycle %d: sprig store verify after SIGKILL exited %d (expected 0, ok)\n"
                  "stdout:\n%s\nstderr:\n%s" % (cycle, v.returncode, v.stdout, v.stderr))
            n = check_durable(db, pts, max(durable), cycle)
            print("cycle %d: killed after %.2f s (%d lines before the signal, %d read), "
                  "durable batch %d, %d durable points checked"
                  % (cycle, delay, seen_before, len(lines), max(durable), n))

            r = h.start("run", "--db", db, "--demo", "--json", name="restart%d" % cycle)
            r.wait_for(lambda ls: sum(1 for o in parse_json_lines(ls, True)[0]
                                      if is_demo_value(o)) >= 8,
                       10, "cycle %d: the restarted run streaming 8 value points" % cycle)
            time.sleep(1.0)
            check(r.alive(), "cycle %d: the restarted run exited within 1 s\n%s"
                  % (cycle, r.stderr_tail()))
            rc = r.stop(signal.SIGTERM)
            check(rc == 0, "cycle %d: restarted run: SIGTERM made it exit %d, expected 0\n%s"
                  % (cycle, rc, r.stderr_tail()))
            rpts, _ = parse_json_lines(r.lines())
            rvals = [o for o in rpts if is_demo_value(o)]
            check(len(rvals) > 500, "cycle %d: the restarted run (rate 500 kept in the "
                  "database) printed only %d values in ~1 s" % (cycle, len(rvals)))
            h.verify(db, expect=0)


if __name__ == "__main__":
    main(test)
