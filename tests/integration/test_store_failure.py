"""Acceptance: what `sprig run` does when its database cannot be written.

  1. A database it cannot write is refused at start: exit 2, the message naming the file
     and the reason, the file left as it was and no -wal/-shm made beside it. Run as root
     (CI), mode 0444 does not stop writes, so the daemon then runs as uid/gid 65534
     (`setpriv`) in a scratch folder that user owns. Three cases: the file is mode 0444;
     the folder cannot be written and the -wal file must be made there; the same
     database made writable again starts, and stops with exit 0.
  2. A full disk, through the real I/O path: the daemon's file size limit (RLIMIT_FSIZE,
     set on the running process with prlimit(2), no root needed) is lowered below its
     -wal file, so its next commit fails with EFBIG (the daemon ignores SIGXFSZ). Points
     acknowledged before (200, each with its own key) are recorded; then every POST is
     answered 503 within a bound: the one or two whose batch failed say the write is
     kept, later ones that it is refused with nothing stored, all naming the database
     file and SQLite's and the system's reason. /v1/status says "failing" with the same
     sentence. Raising the limit again, the daemon recovers by itself (state "ok", a POST
     answered 200) without a restart; every acknowledged and every kept point is then in
     GET /v1/nodes/{id} with its value, no refused one is, and after SIGTERM (exit 0)
     `sprig store verify` passes and the SQLite file holds the same points.
  3. SIGTERM with POSTs waiting (--commit-ms 1000, so each waits for its batch): with a
     working disk they are answered 200 and sprig exits 0; with the disk full they are
     answered 503 naming the stop and the reason, sprig exits 1 (rows lost, logged) and
     never aborts (no "Fatal error" from libmicrohttpd, no signal), and the file still
     verifies.
  4. A commit that does not come back (another connection holds SQLite's write lock): the
     waiting POST gets 503 after about 3 s ("has not finished"), status says
     "stalled", new writes are refused at once; once the lock is released the kept point
     is written and writes are taken again.
Times are printed, bounds asserted generously (the machine is shared).
"""
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import Harness, check, db_query, kill_pid, main, wait_until
from test_api import Daemon, http_request, now_ns, ns_to_rfc3339

NOBODY = 65534
ANSWER_BOUND = 5.0  # s: a write must be answered within this, even when the disk is full
NODE = "tank"


# --- helpers -------------------------------------------------------------------------------

def set_fsize(pid, limit):
    """Sets the soft file size limit of a running process (the hard one stays), as
    `prlimit --pid PID --fsize=LIMIT:` does; RLIM_INFINITY lifts it."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


def fill_disk(d):
    """Lowers d's file size limit below the end of its -wal file (and above the end of its
    stderr file, so its log lines still get written): its next commit fails with EFBIG."""
    limit = os.path.getsize(d.proc.err_path) + 64 * 1024
    set_fsize(d.proc.pid, limit)
    return limit


def point(key, value, t):
    return [{"type": "seq", "key": key, "value": value, "time": ns_to_rfc3339(t)}]


def post_point(d, key, value, t):
    """POSTs one point; returns (Resp, seconds taken)."""
    t0 = time.monotonic()
    r = http_request(d.port, "POST", "/v1/nodes/%s/points" % NODE, point(key, value, t),
                     timeout=ANSWER_BOUND + 10)
    return r, time.monotonic() - t0


def error_of(r):
    o = r.json()
    check(isinstance(o, dict) and isinstance(o.get("error"), str) and o["error"],
          "a %d answer must be {\"error\": sentence}, got %r" % (r.status, r))
    return o["error"]


def node_points(d):
    n = d.expect(200, "GET", "/v1/nodes/" + NODE)
    return {p["key"]: p for p in n["points"] if p["type"] == "seq" and not p["tombstone"]}


def new_daemon(h, db, *extra, name):
    d = Daemon(h, db, *extra, name=name)
    st = d.status()
    d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": st["root"], "id": NODE})
    return d


# --- 1: a database it cannot write ---------------------------------------------------------

class AsUser:
    """Runs sprig as an unprivileged user when the test runs as root (mode 0444 does not
    stop root's writes); as the test's own user otherwise."""

    def __init__(self, h):
        self.h = h
        self.root = os.geteuid() == 0
        self.uid = NOBODY if self.root else os.geteuid()
        self.gid = NOBODY if self.root else os.getegid()
        self.sprig = h.sprig
        if self.root:
            os.chmod(h.dir, 0o755)  # mkdtemp's folder is 0700: let that user in
            if self.run_plain("--help").returncode != 0:
                # The binary's folder is closed to that user: a copy it can run (the
                # refusal comes before the schema is looked for).
                self.sprig = h.path("sprig-copy")
                shutil.copy2(h.sprig, self.sprig)
                os.chmod(self.sprig, 0o755)

    def argv(self, *args):
        pre = ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.gid,
               "--clear-groups"] if self.root else []
        return pre + [self.sprig] + list(args)

    def run_plain(self, *args, cwd=None):
        return subprocess.run(self.argv(*args), cwd=cwd or self.h.dir,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                              text=True, errors="replace")

    def folder(self, name):
        path = self.h.path(name)
        os.mkdir(path)
        os.chown(path, self.uid, self.gid)
        return path

    def give(self, path):
        os.chown(path, self.uid, self.gid)


def make_db(h, path):
    """A database with one node, made by a daemon of the test's own user (stopped)."""
    d = new_daemon(h, path, name="maker-%s" % os.path.basename(path))
    d.stop()


def test_refused_at_start(h):
    u = AsUser(h)
    who = "uid %d%s" % (u.uid, " via setpriv" if u.root else "")

    # The file is mode 0444.
    folder = u.folder("ro-file")
    db = os.path.join(folder, "ro.db")
    make_db(h, db)
    for f in os.listdir(folder):
        u.give(os.path.join(folder, f))
    os.chmod(db, 0o444)
    before = open(db, "rb").read()
    r = u.run_plain("run", "--db", db, "--listen", "127.0.0.1:0", "--quiet")
    check(r.returncode == 2, "a 0444 database (%s): sprig run exited %d, expected 2\n"
          "stderr:\n%s" % (who, r.returncode, r.stderr))
    check(db in r.stderr and "cannot be written" in r.stderr and "0444" in r.stderr
          and "Permission denied" in r.stderr,
          "a 0444 database: the message must name %s, say it cannot be written and why "
          "(Permission denied, mode 0444), got:\n%s" % (db, r.stderr))
    check(open(db, "rb").read() == before, "a refused 0444 database was changed")
    extra = sorted(f for f in os.listdir(folder) if f.endswith(("-wal", "-shm")))
    check(not extra, "a refused 0444 database got side files %r" % extra)
    print("0444 database (%s): exit 2, %s" % (who, r.stderr.strip()))

    # Made writable again, the same database starts and stops cleanly.
    os.chmod(db, 0o644)
    err_path = h.path("writable-again.stderr")
    with open(err_path, "wb") as err:
        p = subprocess.Popen(u.argv("run", "--db", db, "--listen", "127.0.0.1:0", "--quiet"),
                             cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err)
    try:
        wait_until(lambda: "writable again: sprig run did not start listening (exit %r):\n%s"
                   % (p.poll(), open(err_path).read()),
                   lambda: "api: listening" in open(err_path).read() or p.poll() is not None,
                   15)
        check(p.poll() is None, "writable again: sprig run exited %r:\n%s"
              % (p.poll(), open(err_path).read()))
        os.kill(p.pid, signal.SIGTERM)
        rc = p.wait(timeout=15)
        check(rc == 0, "writable again: SIGTERM made sprig run exit %d:\n%s"
              % (rc, open(err_path).read()))
    finally:
        kill_pid(p, p.pid)
    print("the same database made writable (0644): starts, SIGTERM exits 0")

    # The folder cannot be written, and the -wal file would have to be made there.
    folder = u.folder("ro-dir")
    db = os.path.join(folder, "ro.db")
    make_db(h, db)
    for f in os.listdir(folder):
        u.give(os.path.join(folder, f))
    check(not os.path.exists(db + "-wal"), "a closed database still has its -wal file")
    os.chmod(folder, 0o555)
    try:
        r = u.run_plain("run", "--db", db, "--listen", "127.0.0.1:0", "--quiet")
        check(r.returncode == 2, "a database in a read-only folder (%s): sprig run exited "
              "%d, expected 2\nstderr:\n%s" % (who, r.returncode, r.stderr))
        check(db in r.stderr and folder in r.stderr and "-wal" in r.stderr,
              "a read-only folder: the message must name %s, its folder %s and the -wal file "
              "to be made there, got:\n%s" % (db, folder, r.stderr))
        print("read-only folder (%s): exit 2, %s" % (who, r.stderr.strip()))
    finally:
        os.chmod(folder, 0o755)


# --- 2: a full disk ------------------------------------------------------------------------

def test_full_disk(h):
    db = h.path("full.db")
    d = new_daemon(h, db, name="full")
    t0 = now_ns() - 600 * 1_000_000_000
    acked, kept, refused = {}, {}, {}
    seq = 0
    for _ in range(30):
        r, _dt = post_point(d, "k%d" % seq, float(seq), t0 + seq)
        check(r.status == 200, "before the disk fills: POST answered %r" % r)
        acked["k%d" % seq] = float(seq)
        seq += 1

    limit = fill_disk(d)
    print("full disk: file size limit of pid %d lowered to %d bytes (-wal is %d bytes)"
          % (d.proc.pid, limit, os.path.getsize(db + "-wal")))
    first_503 = None
    times_503 = []
    deadline = time.monotonic() + 60
    for _ in range(3000):
        check(time.monotonic() < deadline, "the disk is full, yet no POST was refused in "
              "60 s (%d sent)" % (seq - 30))
        key = "k%d" % seq
        r, dt = post_point(d, key, float(seq), t0 + seq)
        seq += 1
        if r.status == 200:
            check(first_503 is None, "after a 503, a POST was answered 200 while the disk is "
                  "still full: %r" % r)
            acked[key] = float(seq - 1)
            continue
        check(r.status == 503, "the disk is full: POST answered %r, expected 200 or 503" % r)
        msg = error_of(r)
        times_503.append(dt)
        check(dt < ANSWER_BOUND, "a 503 came after %.2f s (bound %.1f s)" % (dt, ANSWER_BOUND))
        check(db in msg and "disk I/O error" in msg and "File too large" in msg,
              "a 503 must name the database %s and the reason (SQLite's \"disk I/O error\", "
              "the system's \"File too large\"), got: %s" % (db, msg))
        if first_503 is None:
            first_503 = msg
        if "refused" in msg:
            check("nothing of it is stored" in msg, "a refusal must say nothing is stored: %s"
                  % msg)
            refused[key] = float(seq - 1)
        else:
            check(not refused and "kept" in msg and "not on disk yet" in msg,
                  "a 503 before any refusal must say the write is kept (its batch failed), "
                  "got: %s" % msg)
            kept[key] = float(seq - 1)
        if len(refused) >= 10:
            break
    check(len(refused) >= 10, "no refusals in %d POSTs" % (seq - 30))
    print("full disk: %d POSTs answered 200, %d kept, %d refused; 503 in at most %.1f ms "
          "(median %.1f ms)" % (len(acked), len(kept), len(refused), max(times_503) * 1000,
                                sorted(times_503)[len(times_503) // 2] * 1000))
    print("full disk: first 503 says: %s" % first_503)

    st = d.status()["store"]
    check(st.get("state") == "failing" and db in st.get("error", "")
          and "File too large" in st.get("error", "") and st.get("since")
          and st.get("failures", 0) >= 1,
          "status while the disk is full must say failing, why, since when: %r" % st)
    check(st["backlog"] >= len(kept), "status backlog %r, but %d writes are kept"
          % (st["backlog"], len(kept)))
    print("full disk: status store: %s" % json.dumps(st))
    pts = node_points(d)
    check(all(k in pts for k in acked), "reads while the disk is full: acknowledged points "
          "missing: %r" % sorted(k for k in acked if k not in pts)[:5])
    check(not any(k in pts for k in refused), "a refused write is visible: %r"
          % sorted(k for k in refused if k in pts)[:5])

    # A few retries (100 ms, doubling) fail too; the kept batch stays queued through them.
    wait_until(lambda: "the failed batch is not tried again: %r" % d.status()["store"],
               lambda: d.status()["store"].get("failures", 0) >= 3, 15)
    set_fsize(d.proc.pid, resource.RLIM_INFINITY)
    t_lift = time.monotonic()
    wait_until(lambda: "the limit is lifted, yet status still says %r" % d.status()["store"],
               lambda: d.status()["store"].get("state") == "ok", 20, every=0.05)
    recovered = time.monotonic() - t_lift
    st = d.status()["store"]
    check(st["backlog"] == 0 and "error" not in st, "after recovery: %r" % st)
    key = "k%d" % seq
    r, dt = post_point(d, key, float(seq), t0 + seq)
    check(r.status == 200, "after recovery (no restart): POST answered %r" % r)
    acked[key] = float(seq)
    print("full disk: limit lifted, store ok again after %.2f s (retry backoff), next POST "
          "200 in %.1f ms, no restart" % (recovered, dt * 1000))

    pts = node_points(d)
    for k, v in list(acked.items()) + list(kept.items()):
        check(k in pts and pts[k]["value"] == v, "after recovery: point %s is %r, expected "
              "value %r" % (k, pts.get(k), v))
    check(not any(k in pts for k in refused), "after recovery a refused write is there: %r"
          % sorted(k for k in refused if k in pts)[:5])
    d.stop()
    v = h.verify(db, expect=0)
    rows = dict(db_query(db, "SELECT key, value FROM points WHERE node = ? AND type = 'seq'",
                         (NODE,)))
    want = dict(acked)
    want.update(kept)
    check(rows == want, "the file after the stop: %d points, expected %d (missing %r, extra "
          "%r)" % (len(rows), len(want), sorted(set(want) - set(rows))[:5],
                   sorted(set(rows) - set(want))[:5]))
    print("full disk: after SIGTERM (exit 0) the file holds all %d acknowledged and kept "
          "points, none refused; %s" % (len(want), v.stdout.strip()))


# --- 3: SIGTERM with POSTs waiting --------------------------------------------------------

def sigterm_with_waiting(h, name, full):
    db = h.path(name + ".db")
    d = new_daemon(h, db, "--commit-ms", "1000", name=name)
    t0 = now_ns() - 600 * 1_000_000_000
    r, _ = post_point(d, "before", 1.0, t0)
    check(r.status == 200, "%s: first POST answered %r" % (name, r))
    if full:
        fill_disk(d)
    n = 5
    answers = [None] * n

    def one(i):
        try:
            answers[i] = post_point(d, "w%d" % i, float(i), t0 + 10 + i)
        except Exception as e:  # noqa: BLE001 (reported below)
            answers[i] = (e, None)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    # Each write adds its point's row (and its new series' row) to the open batch, which
    # waits up to a second: all waiting once the backlog holds 2n rows.
    wait_until(lambda: "%s: the %d POSTs are not all waiting: %r" % (name, n, d.status()),
               lambda: d.status()["store"]["backlog"] >= 2 * n, 5, every=0.01)
    st = d.status()["store"]
    check(st["state"] == "ok", "%s: no commit should have been tried yet: %r" % (name, st))
    t_term = time.monotonic()
    d.proc.send(signal.SIGTERM)
    for t in threads:
        t.join(ANSWER_BOUND + 15)
    rc = d.proc.wait(20)
    took = time.monotonic() - t_term
    err = d.proc.stderr()
    check("Fatal error" not in err and rc >= 0,
          "%s: SIGTERM with POSTs waiting: exit %r\nstderr:\n%s" % (name, rc, err[-2000:]))
    for i, a in enumerate(answers):
        check(a is not None and not isinstance(a[0], Exception),
              "%s: waiting POST %d got no answer: %r" % (name, i, a))
    if not full:
        check(all(a[0].status == 200 for a in answers), "%s: waiting POSTs answered %r"
              % (name, [a[0] for a in answers]))
        check(rc == 0, "%s: SIGTERM exit %d, expected 0\n%s" % (name, rc, err[-2000:]))
        keys = dict(db_query(db, "SELECT key, value FROM points WHERE type = 'seq'"))
        check(all("w%d" % i in keys for i in range(n)), "%s: answered 200 but not in the "
              "file: %r" % (name, keys))
        print("SIGTERM, disk fine: %d waiting POSTs answered 200, exit 0 %.0f ms after the "
              "signal" % (n, took * 1000))
    else:
        for a in answers:
            check(a[0].status == 503, "%s: a waiting POST was answered %r, expected 503"
                  % (name, a[0]))
            msg = error_of(a[0])
            check("stopping" in msg and db in msg and "File too large" in msg,
                  "%s: a waiting POST's 503 must say sprig is stopping, the database %s and "
                  "why: %s" % (name, db, msg))
        check(rc == 1, "%s: a SIGTERM'd daemon that could not write its last rows must exit "
              "1, got %d\n%s" % (name, rc, err[-2000:]))
        check("rows are lost" in err, "%s: the lost batch is not logged:\n%s"
              % (name, err[-2000:]))
        keys = dict(db_query(db, "SELECT key, value FROM points WHERE type = 'seq'"))
        check(keys == {"before": 1.0}, "%s: the file holds %r, expected only the point "
              "written before" % (name, keys))
        print("SIGTERM, disk full: %d waiting POSTs answered 503 (\"%s\"), exit 1 %.0f ms "
              "after the signal, no abort" % (n, error_of(answers[0][0]), took * 1000))
    h.verify(db, expect=0)


# --- 4: a commit that does not come back ---------------------------------------------------

def test_stall(h):
    db = h.path("stall.db")
    d = new_daemon(h, db, name="stall")
    t0 = now_ns() - 600 * 1_000_000_000
    lock = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # SQLite's write lock: the daemon's commit waits
        r, dt = post_point(d, "stuck", 1.0, t0)
        check(r.status == 503, "a commit that hangs: the waiting POST answered %r" % r)
        msg = error_of(r)
        check(db in msg and "has not finished" in msg and "kept" in msg,
              "a hanging commit: the 503 must name %s, say the commit has not finished and "
              "that the write is kept: %s" % (db, msg))
        check(dt < ANSWER_BOUND, "a hanging commit: 503 after %.2f s" % dt)
        st = d.status()["store"]
        check(st["state"] == "stalled" and db in st.get("error", ""),
              "status while a commit hangs: %r" % st)
        r2, dt2 = post_point(d, "refused", 2.0, t0 + 1)
        check(r2.status == 503 and "refused" in error_of(r2),
              "a write while the store is stalled: %r" % r2)
        print("stalled commit: waiting POST answered 503 in %.2f s, the next refused in %.1f "
              "ms; status: %s" % (dt, dt2 * 1000, st["error"]))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_until(lambda: "the lock is gone, yet status says %r" % d.status()["store"],
               lambda: d.status()["store"].get("state") == "ok", 20)
    pts = node_points(d)
    check("stuck" in pts and "refused" not in pts, "after the stall: points %r"
          % sorted(pts))
    r, _ = post_point(d, "after", 3.0, t0 + 2)
    check(r.status == 200, "after the stall: POST answered %r" % r)
    d.stop()
    h.verify(db, expect=0)
    print("stalled commit: written once the lock went, writes taken again")


def test():
    with Harness("store-failure") as h:
        test_refused_at_start(h)
        test_full_disk(h)
        sigterm_with_waiting(h, "term-ok", full=False)
        sigterm_with_waiting(h, "term-full", full=True)
        test_stall(h)


if __name__ == "__main__":
    main(test)
