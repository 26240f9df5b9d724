"""Acceptance: `sprig run --store postgresql://...` (DESIGN.md section 11) against a real
PostgreSQL 15 (pg.py) that goes away under load.

A writer thread POSTs one point at a time, each with its own key, and records the ones
answered 200 (acknowledged: durable). Meanwhile:
  1. the server is stopped (fast shutdown) for about 2 s and started again;
  2. the server is killed (SIGKILL of the postmaster and every backend, a crash) and
     started again (crash recovery).
While it is down, writes are answered within a bound (503 naming the database, or 200
once it is back); /v1/status says "failing" with the reason; the daemon reconnects by
itself (state "ok" again, no restart) within a bound. At the end every acknowledged
point is in GET /v1/nodes/{id} and in PostgreSQL's points table (psql), each history
sample at most once; `sprig store verify --store URI` passes; after SIGTERM (exit 0) a
new daemon on the same database loads the same root hash, and the log never shows the
password of the URI. Bad --store values exit 2 naming the value and the rule.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pg import Postgres  # noqa: E402
from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon, http_request  # noqa: E402

NODE = "tank"
ANSWER_BOUND = 8.0   # s: a POST is answered within this even with the server gone
RECOVER_BOUND = 20.0  # s: from the server's return to the store's "ok"


class Writer(threading.Thread):
    """POSTs point seq/KEY=KEY one after another until stopped; records what was acked."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d = d
        self.acked, self.refused, self.slowest = [], 0, 0.0
        self.stop_at = None
        self.halt = threading.Event()
        self.error = None

    def run(self):
        i = 0
        try:
            while not self.halt.is_set() and i < 100000:
                t0 = time.monotonic()
                r = http_request(self.d.port, "POST", "/v1/nodes/%s/points" % NODE,
                                 [{"type": "seq", "key": str(i), "value": i}],
                                 timeout=ANSWER_BOUND + 10)
                took = time.monotonic() - t0
                self.slowest = max(self.slowest, took)
                if r.status == 200:
                    self.acked.append(i)
                elif r.status == 503:
                    self.refused += 1
                    time.sleep(0.05)
                else:
                    self.error = "POST answered %r" % (r,)
                    return
                i += 1
        except Exception as e:  # reported by the main thread
            self.error = repr(e)


def store_state(d):
    st = d.status()
    s = st.get("store", {})
    return s.get("state"), s.get("error")


def outage(h, pg, d, w, how):
    n0 = len(w.acked)
    wait_until("writes acknowledged before the %s" % how, lambda: len(w.acked) >= n0 + 50, 20)
    t0 = time.monotonic()
    if how == "stop":
        pg.stop()
    else:
        pg.kill9()
    wait_until("status says failing while the server is down (%s)" % how,
               lambda: store_state(d)[0] in ("failing", "stalled"), 15)
    state, err = store_state(d)
    check(err and "postgresql://sprig@127.0.0.1" in err and pg.password not in err,
          "the failing store's sentence names the database without its password: %r" % err)
    time.sleep(1.5)
    pg.start()
    t1 = time.monotonic()
    wait_until("the store is ok again after the %s" % how,
               lambda: store_state(d)[0] == "ok", RECOVER_BOUND)
    n1 = len(w.acked)
    wait_until("writes acknowledged after the %s" % how, lambda: len(w.acked) >= n1 + 50, 20)
    print("%s: down %.1f s, store ok %.1f s after the server's return; %d refused so far"
          % (how, t1 - t0, time.monotonic() - t1, w.refused))


def test():
    with Harness("store_pg") as h:
        for args, want in ((["--store", "foo"], '--store "foo" is not a store'),
                           (["--store", "sqlite:"], '--store "sqlite:" is not a store'),
                           (["--db", "a.db", "--store", "sqlite:b.db"],
                            "--db and --store name the database: give one of them")):
            r = h.run("run", *args)
            check(r.returncode == 2 and want in r.stderr,
                  "sprig run %s: exit %d, stderr %r (expected 2 and %r)"
                  % (" ".join(args), r.returncode, r.stderr, want))
            r = h.run("store", "verify", *args)
            check(r.returncode == 2 and want in r.stderr,
                  "sprig store verify %s: exit %d, stderr %r" % (" ".join(args), r.returncode,
                                                                r.stderr))
        pg = Postgres(h)
        d = Daemon(h, pg.uri, "--rules", "off", name="sprig-pg")
        st = d.status()
        d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": st["root"], "id": NODE})
        w = Writer(d)
        w.start()
        try:
            outage(h, pg, d, w, "stop")
            outage(h, pg, d, w, "kill -9")
        finally:
            w.halt.set()
            w.join(ANSWER_BOUND + 15)
        check(not w.is_alive(), "the writer did not stop")
        check(w.error is None, "writer: %s" % w.error)
        check(w.slowest <= ANSWER_BOUND, "a POST took %.1f s (bound %.1f s)"
              % (w.slowest, ANSWER_BOUND))
        print("%d acknowledged, %d refused, slowest answer %.2f s"
              % (len(w.acked), w.refused, w.slowest))

        node = d.expect(200, "GET", "/v1/nodes/" + NODE)
        have = {p["key"] for p in node["points"] if p["type"] == "seq"}
        missing = [k for k in w.acked if str(k) not in have]
        check(not missing, "acknowledged points missing from the API: %r" % missing[:10])
        in_pg = set(pg.psql("SELECT key FROM points WHERE node = '%s' AND type = 'seq'"
                            % NODE).split())
        missing = [k for k in w.acked if str(k) not in in_pg]
        check(not missing, "acknowledged points missing from PostgreSQL: %r" % missing[:10])
        twice = pg.psql("SELECT count(*) FROM (SELECT s.key FROM history h JOIN series s"
                        " ON s.device = h.device AND s.id = h.series WHERE s.node = '%s'"
                        " GROUP BY s.key HAVING count(*) > 1) x" % NODE).strip()
        check(twice == "0", "history holds %s samples twice" % twice)
        root_hash = d.status()["hash"]
        d.stop()
        r = h.run("store", "verify", "--store", pg.uri)
        check(r.returncode == 0 and "ok" in r.stdout,
              "store verify --store: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        check(pg.password not in r.stdout + r.stderr, "store verify printed the password")
        check(pg.password not in d.proc.stderr(), "the daemon's log shows the password")
        d2 = Daemon(h, pg.uri, "--rules", "off", name="sprig-pg-2")
        check(d2.status()["hash"] == root_hash,
              "a new daemon on the same database loads root hash %r, the old one had %r"
              % (d2.status()["hash"], root_hash))
        node = d2.expect(200, "GET", "/v1/nodes/" + NODE)
        have2 = {p["key"] for p in node["points"] if p["type"] == "seq"}
        check(have2 == have, "after a restart the node has %d seq points, before %d"
              % (len(have2), len(have)))
        d2.stop()


if __name__ == "__main__":
    main(test)
