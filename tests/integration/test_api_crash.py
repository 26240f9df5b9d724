"""Acceptance: a write acknowledged by the HTTP API (200 on POST /v1/nodes/{id}/points,
which answers once durable) survives SIGKILL of `sprig run`.

Three rounds on one database. Each: `sprig run --listen 127.0.0.1:0` (a new port each
time); a client thread POSTs batches of 100 points with explicit, strictly increasing
times (four keys, values = sequence numbers) over one keep-alive connection and records
every batch answered 200 {"accepted": 100, "stale": 0}; after ~2 s the daemon gets
SIGKILL mid-stream. Then:
  - `sprig store verify` exits 0 on the file the crash left;
  - every acknowledged point is in history (via sqlite3, keyed as PRAGMA
    table_info(history) shows: by series id or by node/type/key) with its exact time and
    value;
  - the daemon restarts on the same database, and GET /v1/nodes/{id} shows for each key
    the newest acknowledged point (or a newer one sent before the kill), time string
    exact;
  - the next round writes on from there. At the end SIGTERM exits 0 and verify passes.
"""
import http.client
import json
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import SCHEMA_ARGS, Harness, check, db_query, main, rfc3339_ns
from test_api import Daemon, now_ns, ns_to_rfc3339

ROUNDS = 3
BATCH = 100
KEYS = ("k0", "k1", "k2", "k3")
NODE = "crash-target"


class Writer(threading.Thread):
    """POSTs batches until the connection fails or stop is set."""

    def __init__(self, port, seq0, t0):
        super().__init__(daemon=True)
        self.port = port
        self.seq = seq0
        self.t0 = t0
        self.acked = []  # (key, time ns, value) of every acknowledged point
        self.sent_max = {}  # key -> newest time sent (acknowledged or not)
        self.batches = 0
        self.error = None
        self.unexpected = None
        self.stop = threading.Event()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while not self.stop.is_set():
                pts, body = [], []
                for _ in range(BATCH):
                    key = KEYS[self.seq % len(KEYS)]
                    t = self.t0 + self.seq * 1000
                    pts.append((key, t, float(self.seq)))
                    body.append({"type": "seq", "key": key, "time": ns_to_rfc3339(t),
                                 "value": float(self.seq)})
                    self.sent_max[key] = t
                    self.seq += 1
                data = json.dumps(body).encode()
                conn.request("POST", "/v1/nodes/%s/points" % NODE, body=data,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                answer = r.read()
                if r.status != 200 or json.loads(answer) != {"accepted": BATCH, "stale": 0}:
                    self.unexpected = (r.status, answer[:300])
                    return
                self.acked.extend(pts)
                self.batches += 1
        except Exception as e:  # the daemon was killed under us
            self.error = e
        finally:
            conn.close()


def history_rows(db):
    cols = [r[1] for r in db_query(db, "PRAGMA table_info(history)")]
    if "series" in cols:
        sql = ("SELECT s.key, h.time, h.value FROM history h JOIN series s ON s.id = h.series"
               " WHERE s.node = ? AND s.type = 'seq'")
    else:
        check({"node", "type", "key", "time", "value"} <= set(cols),
              "history has neither a series column nor node/type/key: %r" % cols)
        sql = "SELECT key, time, value FROM history WHERE node = ? AND type = 'seq'"
    return {(k, t): v for k, t, v in db_query(db, sql, (NODE,))}


def test():
    with Harness("api-crash") as h:
        db = h.path("crash.db")
        d = Daemon(h, db, *SCHEMA_ARGS, name="run1")
        root = d.status()["root"]
        d.expect(201, "POST", "/v1/nodes", {"type": "sensor", "parent": root, "id": NODE})
        t0 = now_ns() - 3600 * 1_000_000_000  # an hour back: far inside the drift limit
        seq = 0
        acked_all = []
        for rnd in range(1, ROUNDS + 1):
            w = Writer(d.port, seq, t0)
            w.start()
            time.sleep(2.0)
            check(d.proc.alive(), "round %d: sprig run exited by itself\n%s"
                  % (rnd, d.proc.stderr_tail()))
            check(w.unexpected is None, "round %d: a batch was answered %r" % (rnd, w.unexpected))
            d.proc.send(signal.SIGKILL)
            rc = d.proc.wait(10)
            check(rc == -signal.SIGKILL, "round %d: sprig run ended with %r, not SIGKILL"
                  % (rnd, rc))
            w.join(15)
            check(not w.is_alive(), "round %d: the writer did not stop within 15 s of the kill"
                  % rnd)
            check(w.unexpected is None, "round %d: a batch was answered %r" % (rnd, w.unexpected))
            check(w.batches >= 5, "round %d: only %d batches acknowledged in 2 s (error %r)"
                  % (rnd, w.batches, w.error))
            acked_all.extend(w.acked)
            seq = w.seq + 1000  # the next round's times are later than anything sent

            v = h.verify(db)
            check(v.returncode == 0, "round %d: sprig store verify after SIGKILL exited %d\n"
                  "stdout:\n%s\nstderr:\n%s" % (rnd, v.returncode, v.stdout, v.stderr))
            hist = history_rows(db)
            missing = [(k, t, val) for k, t, val in acked_all if hist.get((k, t)) != val]
            check(not missing, "round %d: %d of %d acknowledged points are not in history with "
                  "their time and value after SIGKILL, e.g. (key, time, value) %r; history has "
                  "%d rows" % (rnd, len(missing), len(acked_all), missing[:3], len(hist)))

            d = Daemon(h, db, *SCHEMA_ARGS, name="run%d" % (rnd + 1))
            n = d.expect(200, "GET", "/v1/nodes/" + NODE)
            got = {p["key"]: p for p in n["points"] if p["type"] == "seq"}
            newest = {}
            for k, t, val in acked_all:
                if k not in newest or t > newest[k][0]:
                    newest[k] = (t, val)
            for k, (t, val) in newest.items():
                p = got.get(k)
                check(p is not None, "round %d: key %s is gone after the restart" % (rnd, k))
                pt = rfc3339_ns(p["time"])
                check(pt >= t and pt <= w.sent_max[k],
                      "round %d: key %s holds time %s; the newest acknowledged is %s, the "
                      "newest sent %s" % (rnd, k, p["time"], ns_to_rfc3339(t),
                                          ns_to_rfc3339(w.sent_max[k])))
                check(pt != t or p["value"] == val,
                      "round %d: key %s at %s holds %r, acknowledged %r"
                      % (rnd, k, p["time"], p["value"], val))
                check(p["time"] == ns_to_rfc3339(pt), "time %r is not in canonical form"
                      % p["time"])
            print("round %d: %d batches (%d points) acknowledged before SIGKILL at 2 s, "
                  "all %d acknowledged so far in history; writer ended with %s"
                  % (rnd, w.batches, len(w.acked), len(acked_all),
                     type(w.error).__name__ if w.error else "no error"))
        d.stop()
        h.verify(db, expect=0)


if __name__ == "__main__":
    main(test)
