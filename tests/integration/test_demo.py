"""`sprig run --demo`: seeds a fresh database once, streams the 4 generators, stops cleanly
on SIGTERM, and a second run on the same database does not seed again, keeps streaming,
and keeps what the first run stored (points survive restarts). `store verify` passes
after each run."""
import re
import signal

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import (DEMO_GENERATORS, Harness, check, db_query, is_demo_value, main,
                       parse_json_lines, rfc3339_ns, same_value)

# "2026-11-27T22:06:28.865Z  demo-temp        value        = 19.8231  by demo-temp"
VALUE_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\s+(demo-[a-z]+)\s+value\s+=\s+(\S+)\s+by (\S+)$")


def values_by_gen(lines):
    seen = {}
    for ln in lines:
        m = VALUE_LINE.match(ln)
        if m:
            seen.setdefault(m.group(1), []).append((float(m.group(2)), m.group(3)))
    return seen


def counts(db):
    nodes = db_query(db, "SELECT count(*) FROM nodes")[0][0]
    hist = db_query(db, "SELECT count(*) FROM history")[0][0]
    return nodes, hist


def test():
    with Harness("demo") as h:
        db = h.path("demo.db")

        # --- run 1: a fresh database, human-readable output --------------------------
        r1 = h.start("run", "--db", db, "--demo", "--rules", "off", "--demo-rate", "5", name="run1")
        r1.wait_for(lambda ls: all(len(values_by_gen(ls).get(g, [])) >= 3
                                   for g in DEMO_GENERATORS),
                    10, "3 value lines from each of %s" % ", ".join(DEMO_GENERATORS))
        lines1 = r1.lines()
        check(any("demo-plant" in ln for ln in lines1),
              "run 1 on a fresh database printed no line about demo-plant (the seeding)")
        for g, vals in values_by_gen(lines1).items():
            check(all(origin == g for _, origin in vals),
                  "%s value lines name another origin: %r" % (g, vals[:3]))
        rc = r1.stop(signal.SIGTERM)
        check(rc == 0, "run 1: SIGTERM made sprig exit %d, expected 0\nstderr:\n%s"
              % (rc, r1.stderr_tail()))
        check("seeded" in r1.stderr(), "run 1 did not log that it seeded the demo plant")

        nodes1, hist1 = counts(db)
        check(nodes1 == 7, "after run 1 the nodes table has %d rows, expected 7 (root, "
              "demo-plant, demo-cooler and 4 generators)" % nodes1)
        gens = {row[0] for row in db_query(db, "SELECT id FROM nodes WHERE type = "
                                               "'signalGenerator'")}
        check(gens == set(DEMO_GENERATORS), "signalGenerator nodes are %r" % sorted(gens))
        check(hist1 >= 12, "after run 1 history holds %d rows, expected at least the 12 "
              "value lines seen" % hist1)
        hist_rows1 = set(db_query(db, "SELECT h.id, s.node, s.type, s.key, h.time, h.value FROM history h JOIN series s ON s.id = h.series"))
        config1 = set(db_query(db, "SELECT node, type, key, time, value, text, hash FROM points"
                                   " WHERE type != 'value'"))
        last1 = dict(db_query(db, "SELECT node, time FROM points WHERE type = 'value'"))
        check(set(last1) == set(DEMO_GENERATORS),
              "after run 1 the points table has a value of %r only" % sorted(last1))
        v = h.verify(db, expect=0)
        check("ok" in v.stdout, "verify after run 1 did not say ok: %r" % v.stdout)

        # --- run 2: same database, JSON output, no --demo-rate -----------------------
        r2 = h.start("run", "--db", db, "--demo", "--rules", "off", "--json", name="run2")
        r2.wait_for(lambda ls: {o["node"] for o in parse_json_lines(ls)[0] if is_demo_value(o)}
                    == set(DEMO_GENERATORS) and
                    sum(1 for o in parse_json_lines(ls)[0] if is_demo_value(o)) >= 12,
                    10, "run 2 streaming 12 value points from all 4 generators")
        check(r2.alive(), "run 2 exited early")
        rc = r2.stop(signal.SIGTERM)
        check(rc == 0, "run 2: SIGTERM made sprig exit %d, expected 0\nstderr:\n%s"
              % (rc, r2.stderr_tail()))
        lines2 = r2.lines()
        pts2, durable2 = parse_json_lines(lines2)
        seeded = [o for o in pts2 if "demo-plant" in (o["node"], o.get("up"))]
        check(not seeded, "run 2 on a seeded database seeded again: %r" % seeded[:3])
        check("seeded" not in r2.stderr(), "run 2 logged seeding the demo plant again")
        others = [o for o in pts2 if not is_demo_value(o)]
        check(not others, "run 2 (no --demo-rate) changed points other than generator values:"
              " %r" % others[:3])
        for o in pts2:
            check(o["origin"] == o["node"], "run 2 value point with origin %r: %r"
                  % (o["origin"], o))
            check(rfc3339_ns(o["time"]) > last1[o["node"]],
                  "run 2 point is not newer than run 1's last value of %s: %r"
                  % (o["node"], o))

        nodes2, hist2 = counts(db)
        check(nodes2 == nodes1, "node count changed from %d to %d across the restart"
              % (nodes1, nodes2))
        check(hist2 >= hist1 + len(pts2) and hist2 > hist1,
              "history grew from %d to %d rows, expected at least %d more (run 2 printed %d "
              "value points)" % (hist1, hist2, len(pts2), len(pts2)))
        hist_rows2 = set(db_query(db, "SELECT h.id, s.node, s.type, s.key, h.time, h.value FROM history h JOIN series s ON s.id = h.series"))
        lost = hist_rows1 - hist_rows2
        check(not lost, "%d history rows of run 1 are gone after run 2, e.g. %r"
              % (len(lost), sorted(lost)[:3]))
        config2 = set(db_query(db, "SELECT node, type, key, time, value, text, hash FROM points"
                                   " WHERE type != 'value'"))
        check(config1 == config2, "configuration points changed across the restart: "
              "gone %r, new %r" % (sorted(config1 - config2)[:3], sorted(config2 - config1)[:3]))

        # A clean stop commits the last batch: every point run 2 printed is stored.
        hist_vals = {(n, t, k, tm): val for n, t, k, tm, val in
                     db_query(db, "SELECT s.node, s.type, s.key, h.time, h.value FROM history h JOIN series s ON s.id = h.series")}
        missing = [o for o in pts2
                   if not same_value(o["value"], hist_vals.get(
                       (o["node"], o["type"], o["key"], rfc3339_ns(o["time"])), float("nan")))]
        check(not missing, "%d of %d points run 2 printed are not in history after its clean "
              "stop, e.g. %r" % (len(missing), len(pts2), missing[:3]))
        if pts2:
            check(durable2 and max(durable2) >= max(o["batch"] for o in pts2),
                  "run 2 stopped cleanly but the last batch %d was never reported durable "
                  "(durable lines: %r)" % (max(o["batch"] for o in pts2), durable2[-3:]))
        newest = {}
        for o in pts2:
            newest[o["node"]] = max(newest.get(o["node"], 0), rfc3339_ns(o["time"]))
        last2 = dict(db_query(db, "SELECT node, time FROM points WHERE type = 'value'"))
        for g in DEMO_GENERATORS:
            check(last2.get(g) == newest.get(g),
                  "points table value time of %s is %r, expected run 2's last printed %r"
                  % (g, last2.get(g), newest.get(g)))
        v = h.verify(db, expect=0)
        check("ok" in v.stdout, "verify after run 2 did not say ok: %r" % v.stdout)

        # --- run 3: SIGINT stops as cleanly as SIGTERM --------------------------------
        r3 = h.start("run", "--db", db, "--demo", "--rules", "off", "--json", name="run3")
        r3.wait_for(lambda ls: sum(1 for o in parse_json_lines(ls, True)[0]
                                   if is_demo_value(o)) >= 4, 10, "run 3 streaming values")
        rc = r3.stop(signal.SIGINT)
        check(rc == 0, "run 3: SIGINT made sprig exit %d, expected 0\nstderr:\n%s"
              % (rc, r3.stderr_tail()))
        pts3, durable3 = parse_json_lines(r3.lines())
        check(pts3 and durable3 and max(durable3) >= max(o["batch"] for o in pts3),
              "run 3 stopped by SIGINT without reporting its last batch durable")
        check(counts(db)[0] == nodes1, "node count changed in run 3")
        h.verify(db, expect=0)


if __name__ == "__main__":
    main(test)
