"""The command line: help texts name every flag, bad usage exits 2 with a message naming
the flag and the value, databases that cannot be used are refused naming the path and are
left as they were, and a second daemon on a database in use is refused while the first
keeps running."""
import hashlib
import os
import signal
import sqlite3
import time

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import (DEMO_GENERATORS, Harness, check, db_query, is_demo_value, main,
                       parse_json_lines)

RUN_FLAGS = ["--db", "--demo", "--demo-rate", "--json", "--quiet", "--commit-ms",
             "--log-level", "--help"]
VERIFY_FLAGS = ["--db", "--fix", "--help"]


def expect(h, args, code, stream="stderr", words=(), absent_words=()):
    r = h.run(*args)
    shown = "sprig %s" % " ".join(args)
    check(r.returncode == code, "%s: expected exit %d, got %d\nstdout:\n%s\nstderr:\n%s"
          % (shown, code, r.returncode, r.stdout, r.stderr))
    text = getattr(r, stream)
    for w in words:
        check(w in text, "%s: %s does not mention %r:\n%s" % (shown, stream, w, text))
    for w in absent_words:
        check(w not in text, "%s: %s mentions %r:\n%s" % (shown, stream, w, text))
    return r


def test():
    with Harness("cli") as h:
        db = h.path("c.db")

        # --- help ----------------------------------------------------------------------
        for args in (["--help"], ["-h"], ["help"]):
            expect(h, args, 0, "stdout", ["run", "store verify"])
        expect(h, ["--version"], 0, "stdout", ["sprig"])
        for args in (["run", "--help"], ["run", "-h"]):
            r = expect(h, args, 0, "stdout", RUN_FLAGS)
            check(r.stderr == "", "%r wrote to stderr: %r" % (args, r.stderr))
        for args in (["store", "verify", "--help"], ["store", "--help"]):
            expect(h, args, 0, "stdout", VERIFY_FLAGS)
        check(not os.path.exists(h.path("sprig.db")), "a help command created sprig.db")

        # --- bad usage: exit 2, message names the flag and the value --------------------
        expect(h, [], 2, "stderr", ["usage"])
        expect(h, ["frobnicate"], 2, "stderr", ["frobnicate"])
        expect(h, ["run", "--bogus"], 2, "stderr", ["--bogus"])
        expect(h, ["run", "--db", db, "--bogus=1"], 2, "stderr", ["--bogus"])
        expect(h, ["run", "--db"], 2, "stderr", ["--db"])
        expect(h, ["run", "--db", db, "--demo", "--demo-rate"], 2, "stderr", ["--demo-rate"])
        expect(h, ["run", "--db", db, "--log-level"], 2, "stderr", ["--log-level"])
        expect(h, ["run", "--db", db, "extra"], 2, "stderr", ["extra"])
        bad_values = [
            ("--demo-rate", "0"), ("--demo-rate", "abc"), ("--demo-rate", "1001"),
            ("--demo-rate", "-5"), ("--demo-rate", "2x"),
            ("--commit-ms", "5000"), ("--commit-ms", "0"), ("--commit-ms", "abc"),
            ("--log-level", "loud"), ("--log-level", ""),
        ]
        for flag, value in bad_values:
            r = expect(h, ["run", "--db", db, "--demo", flag, value], 2, "stderr", [flag])
            check(('"%s"' % value) in r.stderr or (value and value in r.stderr),
                  "sprig run %s %r: the message does not name the value: %r"
                  % (flag, value, r.stderr))
        for arg in ("--demo-rate=0", "--commit-ms=5000", "--log-level=loud"):
            flag, value = arg.split("=")
            expect(h, ["run", "--db", db, "--demo", arg], 2, "stderr", [flag, value])
        expect(h, ["run", "--db", db, "--demo-rate", "5"], 2, "stderr", ["--demo-rate",
                                                                         "--demo"])
        expect(h, ["store"], 2, "stderr", ["verify"])
        expect(h, ["store", "frobnicate"], 2, "stderr", ["frobnicate"])
        expect(h, ["store", "verify", "--db", db, "--bogus"], 2, "stderr", ["--bogus"])
        expect(h, ["store", "verify", "--db"], 2, "stderr", ["--db"])
        expect(h, ["store", "verify", "--db", db, "extra"], 2, "stderr", ["extra"])
        check(not os.path.exists(db), "bad usage created the database %s" % db)
        check(not os.path.exists(h.path("sprig.db")), "bad usage created sprig.db")
        expect(h, ["store", "verify", "--db", db], 2, "stderr", [db])
        check(not os.path.exists(db), "store verify of a missing file created it")

        # --- databases that cannot be used -------------------------------------------
        missing_dir = h.path("nonexistent-dir", "x.db")
        expect(h, ["run", "--db", missing_dir, "--demo"], 2, "stderr", [missing_dir])
        check(not os.path.exists(h.path("nonexistent-dir")), "run created the missing dir")
        if not os.path.exists("/nonexistent-dir"):
            expect(h, ["run", "--db", "/nonexistent-dir/x.db"], 2, "stderr",
                   ["/nonexistent-dir/x.db"])

        notdb = h.path("f.db")
        with open(notdb, "wb") as f:
            f.write(b"hello\n")
        for args in (["run", "--db", notdb, "--demo"], ["store", "verify", "--db", notdb],
                     ["store", "verify", "--db", notdb, "--fix"]):
            r = expect(h, args, 2, "stderr", [notdb])
            with open(notdb, "rb") as f:
                content = f.read()
            check(content == b"hello\n", "sprig %s changed the file that is not a database "
                  "to %r" % (" ".join(args), content[:64]))

        # --- a second daemon on a database in use -----------------------------------
        p = h.start("run", "--db", db, "--demo", "--json", name="first")
        p.wait_for(lambda ls: {o["node"] for o in parse_json_lines(ls, True)[0]
                               if is_demo_value(o)} == set(DEMO_GENERATORS),
                   10, "the first run streaming all 4 generators")
        r = expect(h, ["run", "--db", db, "--demo"], 2, "stderr", ["in use", db])
        check(r.stdout == "", "the refused second run printed changes: %r" % r.stdout[:200])
        before = p.line_count()
        p.wait_for(lambda ls: len(ls) >= before + 8, 10,
                   "the first run still streaming after the second was refused")
        check(p.alive(), "the first run died when a second one was started")
        rc = p.stop(signal.SIGTERM)
        check(rc == 0, "the first run: SIGTERM exit %d\n%s" % (rc, p.stderr_tail()))

        # --- --quiet prints no changes, yet stores them --------------------------------
        hist0 = db_query(db, "SELECT count(*) FROM history")[0][0]
        q = h.start("run", "--db", db, "--demo", "--quiet", "--commit-ms", "50",
                    "--log-level", "warn", name="quiet")
        time.sleep(1.5)
        check(q.alive(), "sprig run --quiet exited early\n%s" % q.stderr_tail())
        rc = q.stop(signal.SIGTERM)
        check(rc == 0, "sprig run --quiet: SIGTERM exit %d\n%s" % (rc, q.stderr_tail()))
        check(q.lines() == [], "sprig run --quiet printed %r" % q.lines()[:3])
        check(" info " not in q.stderr(), "--log-level warn still logged info lines:\n%s"
              % q.stderr_tail())
        hist1 = db_query(db, "SELECT count(*) FROM history")[0][0]
        check(hist1 > hist0, "sprig run --quiet stored nothing (history %d -> %d)"
              % (hist0, hist1))
        h.verify(db, expect=0)

        # --- checks that were found failing run last, so everything above still runs ---
        problems = []

        # A SQLite database of another program is refused and left as it was.
        foreign = h.path("other.db")
        c = sqlite3.connect(foreign)
        with c:
            c.execute("CREATE TABLE t(a)")
            c.execute("INSERT INTO t VALUES(1)")
        c.close()
        with open(foreign, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        expect(h, ["run", "--db", foreign, "--demo"], 2, "stderr", [foreign, "not a sprig"])
        with open(foreign, "rb") as f:
            after = hashlib.sha256(f.read()).hexdigest()
        mode = db_query(foreign, "PRAGMA journal_mode")[0][0]
        if after != digest or mode != "delete":
            problems.append("sprig run --db %s (a SQLite database of another program, journal "
                            "mode delete) was refused with exit 2 but the file was changed "
                            "first: its journal mode is now %r (content hash %s)"
                            % (foreign, mode, "changed" if after != digest else "same"))

        # An empty --db is a bad value: SQLite would open a private temporary database that
        # vanishes at exit, so nothing reported durable would be kept.
        e = h.start("run", "--db", "", "--demo", "--json", name="emptydb")
        try:
            rc = e.wait(3)
        except AssertionError:
            rc = None
        if rc != 2 or "--db" not in e.stderr():
            problems.append("sprig run --db '' --demo: expected exit 2 with a message naming "
                            "--db; it %s (stdout lines: %d, files made: %r)"
                            % ("kept running as a daemon" if rc is None else "exited %d" % rc,
                               e.line_count(), sorted(x for x in os.listdir(h.dir)
                                                      if x.startswith("-"))))
        e.kill()
        check(not problems, "\n  - ".join(["%d problem(s):" % len(problems)] + problems))


if __name__ == "__main__":
    main(test)
