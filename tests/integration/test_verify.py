"""Acceptance: `sprig store verify` finds rows changed outside sprig, `--fix` repairs them,
and the daemon starts on the repaired database.

  - after a short demo run, verify exits 0 and prints "ok";
  - a point changed with sqlite3 directly (demo-temp amplitude + 1): verify exits 1 naming
    demo-temp and amplitude; --fix exits 0 (the row's content becomes the truth, so the
    value stays 6); verify exits 0 again; `sprig run` starts, streams, stops with 0;
  - a point row of an unknown node 'ghost': verify exits 1 naming ghost; --fix exits 0 and
    deletes the row; verify exits 0;
  - while a `sprig run` holds the database: plain verify (read-only) works, verify --fix
    exits 2 saying the database is in use, and the daemon keeps running.
"""
import signal
import time

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import (DEMO_GENERATORS, Harness, check, db_exec, db_query, is_demo_value,
                       main, parse_json_lines)


def demo_run(h, db, name, extra=()):
    """Starts sprig run --demo --json, waits for values of all 4 generators, returns it."""
    p = h.start("run", "--db", db, "--demo", "--json", *extra, name=name)
    p.wait_for(lambda ls: {o["node"] for o in parse_json_lines(ls, True)[0]
                           if is_demo_value(o)} == set(DEMO_GENERATORS),
               10, "%s: value points from all 4 generators" % name)
    return p


def stop_ok(p):
    rc = p.stop(signal.SIGTERM)
    check(rc == 0, "%s: SIGTERM made sprig run exit %d, expected 0\n%s"
          % (p.name, rc, p.stderr_tail()))


def expect_problem(h, db, words):
    r = h.verify(db, expect=1)
    out = r.stdout + r.stderr
    for w in words:
        check(w in out, "verify exited 1 but its output does not name %r:\n%s" % (w, out))
    check("ok" not in out.split(":")[-1], "verify exited 1 yet ends with ok:\n%s" % out)
    return out


def test():
    with Harness("verify") as h:
        db = h.path("v.db")
        stop_ok(demo_run(h, db, "run1", ("--demo-rate", "20")))
        r = h.verify(db, expect=0)
        check(r.stdout.rstrip().endswith("ok"),
              "verify of a clean database does not print ok: %r" % r.stdout)

        # --- a stored point changed outside sprig --------------------------------------
        n = db_exec(db, "UPDATE points SET value = value + 1 WHERE node = 'demo-temp' "
                        "AND type = 'amplitude'")
        check(n == 1, "the amplitude row of demo-temp was not found (%d rows changed)" % n)
        expect_problem(h, db, ["demo-temp", "amplitude"])
        # Without --fix nothing is written: a second plain verify finds the same problem.
        expect_problem(h, db, ["demo-temp", "amplitude"])
        r = h.verify(db, "--fix", expect=0)
        check("demo-temp" in r.stdout and "fixed" in r.stdout,
              "verify --fix did not report fixing demo-temp:\n%s" % r.stdout)
        r = h.verify(db, expect=0)
        check(r.stdout.rstrip().endswith("ok"), "verify after --fix does not say ok: %r"
              % r.stdout)
        amp = db_query(db, "SELECT value FROM points WHERE node = 'demo-temp' AND "
                           "type = 'amplitude'")
        check(amp == [(6.0,)], "after --fix demo-temp amplitude is %r, expected the edited "
              "6.0 to be kept" % amp)

        p = demo_run(h, db, "run2")
        time.sleep(0.5)
        check(p.alive(), "sprig run on the repaired database exited\n%s" % p.stderr_tail())
        stop_ok(p)
        h.verify(db, expect=0)

        # --- a row of an unknown node --------------------------------------------------
        t = db_query(db, "SELECT max(time) FROM points")[0][0]
        db_exec(db, "INSERT INTO points(node, type, key, time, value, text, tombstone, origin,"
                    " hash) VALUES('ghost', 'value', '0', ?, 1.5, '', 0, '', 0)", (t + 1,))
        expect_problem(h, db, ["ghost"])
        r = h.verify(db, "--fix", expect=0)
        check("ghost" in r.stdout and "fixed" in r.stdout,
              "verify --fix did not report removing the ghost row:\n%s" % r.stdout)
        left = db_query(db, "SELECT count(*) FROM points WHERE node = 'ghost'")[0][0]
        check(left == 0, "verify --fix left %d ghost rows in points" % left)
        r = h.verify(db, expect=0)
        check(r.stdout.rstrip().endswith("ok"), "verify after removing ghost: %r" % r.stdout)

        # --- --fix while the daemon holds the database ---------------------------------
        p = demo_run(h, db, "run3")
        r = h.verify(db)
        check(r.returncode == 0, "read-only verify while sprig run writes exited %d:\n%s%s"
              % (r.returncode, r.stdout, r.stderr))
        r = h.verify(db, "--fix", expect=2)
        check("in use" in r.stderr, "verify --fix on a database held by sprig run does not "
              "say it is in use; stderr: %r" % r.stderr)
        before = p.line_count()
        p.wait_for(lambda ls: len(ls) >= before + 8, 10,
                   "sprig run still streaming after the refused verify --fix")
        check(p.alive(), "sprig run died after a concurrent verify --fix")
        stop_ok(p)
        h.verify(db, expect=0)


if __name__ == "__main__":
    main(test)
