"""Acceptance: `sprig store verify` finds rows changed outside sprig, `--fix` repairs them,
and the daemon starts on the repaired database.

  - after a short demo run, verify exits 0 and prints "ok";
  - a point changed with sqlite3 directly (demo-temp amplitude + 1): verify exits 1 naming
    demo-temp and amplitude; --fix exits 0 (the row's content becomes the truth, so the
    value stays 6); verify exits 0 again; `sprig run` starts, streams, stops with 0;
  - a point row of an unknown node 'ghost': verify exits 1 naming ghost; --fix exits 0 and
    deletes the row; verify exits 0;
  - while a `sprig run` holds the database: plain verify (read-only) works, verify --fix
    exits 2 saying the database is in use, and the daemon keeps running;
  - rows a person writes with sqlite3 that sprig cannot load, each on a copy of the clean
    database: a cycle of 2 (an edge without points), of 3 (its newest edge by its points'
    times goes), an edge to itself, a value of inf, -inf and nan, a node id "bad id/é", an
    empty type. For each: verify exits 1 naming the row and the rule broken; the daemon
    started on it logs exactly one line about the database, naming the problems and
    `sprig store verify --db FILE --fix`, and loads nothing of what verify calls invalid
    (no "not a finite number" from the generators); --fix exits 0 saying what it did;
    verify then exits 0 with "ok"; and the daemon starts with no warning about it.
"""
import math
import shutil
import signal
import time

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import (DEMO_GENERATORS, Harness, check, db_exec, db_query, is_demo_value,
                       main, parse_json_lines, wait_until)


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

        # --- rows sprig cannot load, each on a copy of the clean database ----------------
        for case in BAD_ROWS:
            bad_rows_case(h, db, *case)


def newest_edge_of(db, edges):
    """The edge, of the (up, down) pairs given, whose points were written last."""
    def last(e):
        t = db_query(db, "SELECT max(time) FROM edge_points WHERE up = ? AND down = ?", e)[0][0]
        return float("inf") if t is None else t
    return max(edges, key=last)


def root_of(db):
    return db_query(db, "SELECT value FROM meta WHERE key = 'root'")[0][0]


def sql_rows(db, stmts):
    for q, args in stmts:
        db_exec(db, q, args)


def future(db):
    return db_query(db, "SELECT max(time) FROM points")[0][0] + 1000


# Each case: name, a function (db) -> [(sql, args)] writing the bad rows, the words verify
# must print (a function of db), the rows that must be gone after --fix (sql counting them).
BAD_ROWS = [
    ("cycle2",
     lambda db: [("INSERT INTO edges(up, down) VALUES('demo-temp', 'demo-plant')", ())],
     lambda db: ['edge "demo-temp" -> "demo-plant": closes the cycle',
                 "it has no points", "edge deleted"],
     "SELECT count(*) FROM edges WHERE up = 'demo-temp' AND down = 'demo-plant'"),
    ("cycle3",
     # root -> demo-plant -> demo-temp -> root, the new edge written last.
     lambda db: [("INSERT INTO edges(up, down) VALUES('demo-temp', ?)", (root_of(db),)),
                 ("INSERT INTO edge_points(up, down, type, key, time, value, text, tombstone,"
                  " origin, hash) VALUES('demo-temp', ?, 'tombstone', '0', ?, 0, '', 0, '', 0)",
                  (root_of(db), future(db)))],
     lambda db: ['edge "%s" -> "%s": closes the cycle' % newest_edge_of(
                     db, [(root_of(db), "demo-plant"), ("demo-plant", "demo-temp"),
                          ("demo-temp", root_of(db))]),
                 "it is its newest edge (written 20", "edge deleted with its points"],
     "SELECT count(*) FROM edges WHERE up = 'demo-temp'"),
    ("self-edge",
     lambda db: [("INSERT INTO edges(up, down) VALUES('demo-flow', 'demo-flow')", ())],
     lambda db: ['edge "demo-flow" -> "demo-flow": closes the cycle demo-flow -> demo-flow '
                 '(an edge to itself)', "edge deleted"],
     "SELECT count(*) FROM edges WHERE up = 'demo-flow' AND down = 'demo-flow'"),
    ("inf",
     lambda db: [("UPDATE points SET value = ? WHERE node = 'demo-temp' AND type = 'amplitude'",
                  (math.inf,))],
     lambda db: ['node "demo-temp": point amplitude/0 value = inf is not a finite number',
                 "point deleted (the node falls back to its default"],
     "SELECT count(*) FROM points WHERE node = 'demo-temp' AND type = 'amplitude'"),
    ("-inf",
     lambda db: [("UPDATE points SET value = ? WHERE node = 'demo-flow' AND type = 'offset'",
                  (-math.inf,))],
     lambda db: ['node "demo-flow": point offset/0 value = -inf is not a finite number',
                 "point deleted"],
     "SELECT count(*) FROM points WHERE node = 'demo-flow' AND type = 'offset'"),
    # SQLite keeps no NaN (it binds NULL, refused by NOT NULL): a person's nan is text.
    ("nan",
     lambda db: [("UPDATE points SET value = 'nan' WHERE node = 'demo-pump' AND "
                  "type = 'amplitude'", ())],
     lambda db: ['node "demo-pump": point amplitude/0 value = nan is not a finite number',
                 "point deleted"],
     "SELECT count(*) FROM points WHERE node = 'demo-pump' AND type = 'amplitude'"),
    ("bad-id",
     lambda db: [("INSERT INTO nodes(id, type) VALUES('bad id/\u00e9', 'group')", ()),
                 ("INSERT INTO edges(up, down) VALUES('demo-plant', 'bad id/\u00e9')", ()),
                 ("INSERT INTO points(node, type, key, time, value, text, tombstone, origin,"
                  " hash) VALUES('bad id/\u00e9', 'description', '0', ?, 0, 'x', 0, '', 0)",
                  (future(db),))],
     lambda db: ['node "bad id/\\xc3\\xa9" of type "group": its id is not 1-64 bytes of '
                 '[A-Za-z0-9._:-]', "node deleted (its edges and points below too)",
                 'edge "demo-plant" -> "bad id/\\xc3\\xa9": names node "bad id/\\xc3\\xa9", '
                 'which is not valid (left out)'],
     "SELECT (SELECT count(*) FROM nodes WHERE id = 'bad id/\u00e9') + (SELECT count(*) FROM "
     "edges WHERE down = 'bad id/\u00e9') + (SELECT count(*) FROM points WHERE "
     "node = 'bad id/\u00e9')"),
    ("empty-type",
     lambda db: [("INSERT INTO nodes(id, type) VALUES('notype', '')", ()),
                 ("INSERT INTO edges(up, down) VALUES('demo-plant', 'notype')", ())],
     lambda db: ['node "notype" of type "": its type is not 1-64 bytes', "node deleted",
                 'edge "demo-plant" -> "notype": names node "notype", which is not valid'],
     "SELECT (SELECT count(*) FROM nodes WHERE id = 'notype') + (SELECT count(*) FROM edges "
     "WHERE down = 'notype')"),
]


def db_lines(p, db):
    """The daemon's warnings about the database."""
    return [l for l in p.stderr().splitlines()
            if ("warn" in l or "error" in l) and ("database %s" % db in l or "store verify" in l)]


def bad_rows_case(h, clean, name, write, words, gone_sql):
    db = h.path("bad-%s.db" % name)
    shutil.copyfile(clean, db)
    sql_rows(db, write(db))
    want = words(db)
    r = h.verify(db, expect=1)
    for w in want[:1] + [want[-1]]:
        check(w in r.stdout, "%s: verify does not say %r:\n%s" % (name, w, r.stdout))

    # The daemon: one line naming the problems and the repair; nothing invalid loaded.
    p = demo_run(h, db, "run-" + name)
    time.sleep(1.5)  # a generator with an invalid point would now have logged it
    lines = db_lines(p, db)
    check(len(lines) == 1 and "sprig store verify --db %s --fix" % db in lines[0]
          and "left out" in lines[0],
          "%s: the daemon's log should have one line naming the problems and `sprig store "
          "verify --db %s --fix`, has %d:\n%s" % (name, db, len(lines), "\n".join(lines)))
    err = p.stderr()
    check("not a finite number" not in err,
          "%s: the daemon loaded a value verify calls invalid:\n%s" % (name, p.stderr_tail()))
    stop_ok(p)

    r = h.verify(db, "--fix", expect=0)
    for w in want:
        check(w in r.stdout, "%s: verify --fix does not say %r:\n%s" % (name, w, r.stdout))
    check("all fixed" in r.stdout, "%s: verify --fix does not say all fixed:\n%s"
          % (name, r.stdout))
    left = db_query(db, gone_sql)[0][0]
    check(left == 0, "%s: after --fix %d of the bad rows are still there" % (name, left))
    r = h.verify(db, expect=0)
    check(r.stdout.rstrip().endswith("ok"), "%s: verify after --fix: %r" % (name, r.stdout))

    p = demo_run(h, db, "rerun-" + name)
    lines = db_lines(p, db)
    check(lines == [], "%s: the daemon on the repaired database still warns:\n%s"
          % (name, "\n".join(lines)))
    stop_ok(p)
    h.verify(db, expect=0)


if __name__ == "__main__":
    main(test)
