"""Benchmark of the cloud side (DESIGN.md section 11) as far as it exists: one upstream
process (`sprig run --serve-sync`) serving N gateways through one mosquitto on loopback,
its store a SQLite file (--db) in one half of a round and a throwaway PostgreSQL 15 (pg.py,
fsync on, --store URI, an empty database each round) in the other, with the same N, trees
and load. The workers of section 11 are not built yet, so this measures one upstream.
The order of the halves is swapped every round (default 2 rounds: SQLite, PostgreSQL,
PostgreSQL, SQLite), so a drift in whatever else runs on the machine weighs on both alike.

In each half, with a fresh broker, upstream and N fresh gateways (`sprig run --rules off`,
each importing a tree of 5 groups of 9 leaves, 50 nodes, ids unique across the fleet):
  1. memory: the upstream's VmRSS (/proc/PID/status) once it idles before any gateway
     links, and once all N are in sync (every gateway's root hash equal to the upstream's
     copy, every gateway's history of its import acknowledged, then 1 s idle):
     (after - before) / N per device, beside what one device's tree adds to the upstream
     (its /v1/status nodes and points, before and after, over N);
  2. live: every gateway gets P points (default 50,000) written through its own API by a
     thread of this script, batches of 1,000 ("live" points, keys 0-49, on one of its
     leaves, the leaf changing each batch), as fast as its API answers (each answer comes
     once the points are on the gateway's disk); the bodies are built before the clock
     starts. The clock runs from the first POST until the last point of every gateway is
     on the upstream, and the time of the API calls alone (the last answer) is printed
     beside it;
  3. backlog: the same load again while the upstream is stopped (SIGSTOP): the gateways
     take the points and publish them as pts messages that wait in the broker, so their
     production costs the upstream nothing and its rate is printed as the gateways'
     production alone (without the upstream's work beside it); 2 s later the upstream
     gets SIGCONT and the clock runs until the last point of every gateway is applied
     (SIGSTOP is held under 30 s, the upstream's MQTT keepalive). The broker's
     max_queued_messages is raised from mosquitto's 1,000 for this (and for a store that
     falls behind in the live phase): past it mosquitto drops QoS 1 messages for a slow
     client, and the probe's repair would then send the rest as whole nodes.

"Arrived" is measured three ways, each from the upstream's own API, polled every 20 ms:
  applied: the last point of each gateway (node, key and value of its last batch) is in
     the upstream's tree (GET /v1/nodes/{leaf}): what its API answers from then on. The
     counters of /v1/status alone would not be exact: "writes.accepted" grows by one for
     each forwarded point (the gateways do not coalesce changes) but also for each history
     batch (the device's histCursor), and "store.rows" counts history and series rows too.
     So accepted having grown by N x P only starts the per-gateway reads (N GETs a poll),
     which decide;
  on disk: every row the upstream had queued by then is committed in its store. The store
     commits batches in order, one in flight and one open at most, so that holds once
     /v1/status "store.backlog" reads 0 or "store.durableBatch" is 2 past the value read
     right after the applied check. The stores are compared on this figure: applying is
     not held back by the store (the loop thread applies to memory and queues rows, and
     nothing slows it while the store lags), so "applied" alone says little about it. Both
     stores make each commit durable: the daemon's SQLite runs WAL with synchronous=FULL,
     the PostgreSQL server fsync and synchronous_commit on;
  history acknowledged: every gateway's sync node's histAcked (written at each
     acknowledgement) has reached the last id of the gateway's history table (read from
     its SQLite file once its API answered the last batch): the history samples the
     gateway took of those points (one per point) are uploaded on sprig/<device>/hist and
     acknowledged by the upstream once on its disk, one batch of up to 500 at a time per
     gateway, so this is bound by the upstream's commit latency more than by its rate.

Beside each figure: the CPU seconds each part used until "on disk" (/proc/PID/stat and the
loop thread's /proc/PID/task/PID/stat): the upstream's loop thread; its other threads
(libuv's workers, where the store's commits run: SQLite itself, or libpq waiting for the
server); PostgreSQL's postmaster and backends; the gateways; the broker; this script; and
"other work", what else kept the machine busy (/proc/stat) in the meantime, as the machine
is shared; and the CPU a point, of all these processes together (other work aside) and
of the upstream's side alone (its threads and PostgreSQL's), which the machine's other
load disturbs much less than the rates. Then a line saying what limited the phase, read
from those figures: the gateways' production when the upstream applied the last points
within 10% of the last API answer, the store when "on disk" came more than 20% after
"applied", the machine's cores when they were 85% busy or more.

Not a test (not in ctest): figures for the README's performance table. Every process is
owned by the Harness (stopped by pid on exit), every wait is bounded, all traffic is on
127.0.0.1. About 100 s with the defaults on 2 cores.

usage: /usr/bin/python3 tests/bench/bench_fleet.py build/sprig [--gateways N]
           [--points P] [--rounds R] [--only sqlite|pg]
"""
import argparse
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from broker import Broker  # noqa: E402
from pg import Postgres  # noqa: E402
from test_sync_fleet import leaf, tree_doc as fleet_tree_doc  # noqa: E402
from sprigtest import Harness, TestFailure, check, db_query, main, wait_until  # noqa: E402
from test_api import Daemon, http_request  # noqa: E402

GROUPS, LEAVES = 5, 9         # per gateway: 5 groups of 9 leaves = 50 nodes
BATCH = 1000                  # points per POST
KEYS = 50                     # live point keys per leaf
PERIOD = 5                    # s between a gateway's probes
SYNC_MAX = 180.0              # s for the whole fleet to be in sync (and its import's history)
ARRIVE_MAX = 300.0            # s for a phase's last points, on disk and in history
STOPPED_MAX = 25.0            # s the upstream may stay stopped (its MQTT keepalive is 30 s)
POLL = 0.02                   # s between two looks at the upstream
TCK = os.sysconf("SC_CLK_TCK")
STORES = (("sqlite", "SQLite"), ("pg", "PostgreSQL"))


# --- the fleet's trees and load ------------------------------------------------------------


def tree_doc(root, g):
    """Gateway g's tree in the export format (test_sync_fleet.py's, smaller): GROUPS groups
    under its root, LEAVES leaves in each, every point with an explicit time."""
    return fleet_tree_doc(root, g, GROUPS, LEAVES)


def load(g, points, base):
    """Gateway g's bodies: [(path, body bytes)], and its last point (node, key, value)."""
    out, last = [], None
    for j, s in enumerate(range(0, points, BATCH)):
        node = leaf(g, j % (GROUPS * LEAVES))
        n = min(BATCH, points - s)
        body = "[" + ",".join('{"type":"live","key":"%d","value":%d}' % (i % KEYS, base + s + i)
                              for i in range(n)) + "]"
        out.append(("/v1/nodes/%s/points" % node, body.encode()))
        last = (node, str((n - 1) % KEYS), base + s + n - 1)
    return out, last


def feed(gws, bodies):
    """Posts each gateway's bodies from a thread of its own, all starting together (one
    fresh connection a batch). Returns (start in monotonic time, threads, their end times,
    errors) for join_feed; a thread stops at an answer other than 200 with nothing stale."""
    errors = []
    ends = [0.0] * len(gws)
    go = threading.Barrier(len(gws) + 1)

    def run(i):
        go.wait()
        try:
            for path, body in bodies[i]:
                r = http_request(gws[i].port, "POST", path, body, timeout=60)
                if r.status != 200 or r.json().get("stale") != 0:
                    errors.append("%s: POST %s: %r" % (gws[i].name, path, r))
                    return
        except Exception as e:  # noqa: BLE001 - reported below, with the gateway's name
            errors.append("%s: %r" % (gws[i].name, e))
        finally:
            ends[i] = time.monotonic()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(gws))]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.monotonic()
    return t0, threads, ends, errors


def join_feed(threads, ends, errors, timeout):
    """Waits (bounded) for feed's threads; fails on an error; returns the last end time."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    check(not any(t.is_alive() for t in threads),
          "the gateways' API calls did not finish within %.0f s" % timeout)
    check(not errors, "the load was refused: %s" % "; ".join(errors[:3]))
    return max(ends)


# --- what the processes used ---------------------------------------------------------------


def _stat(path):
    """utime, stime, cutime, cstime of /proc/.../stat in seconds (zeros once gone)."""
    try:
        with open(path, "rb") as f:
            s = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return (0.0, 0.0, 0.0, 0.0)
    f = s[s.rindex(")") + 2:].split()
    return tuple(int(x) / TCK for x in f[11:15])


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    raise TestFailure("no %s for pid %d" % (field, pid))


def children(pid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name, "rb") as f:
                    s = f.read().decode("ascii", "replace")
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(s[s.rindex(")") + 2:].split()[1]) == pid:
                kids.append(int(name))
    return kids


def machine():
    """(busy, all) jiffies of the whole machine from /proc/stat's cpu line."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


class Cpu:
    """CPU seconds by part, taken at two moments; `since(before)` gives the differences."""

    def __init__(self, fleet):
        up = fleet.up.proc.pid
        self.loop = sum(_stat("/proc/%d/task/%d/stat" % (up, up))[:2])
        # The process's own times cover every thread, those that ended too.
        self.upstream = sum(_stat("/proc/%d/stat" % up)[:2])
        self.pg = 0.0
        if fleet.pg is not None and fleet.pg.pid is not None:
            u, s, cu, cs = _stat("/proc/%d/stat" % fleet.pg.pid)
            self.pg = u + s + cu + cs + sum(sum(_stat("/proc/%d/stat" % k)[:2])
                                            for k in children(fleet.pg.pid))
        self.gws = sum(sum(_stat("/proc/%d/stat" % g.proc.pid)[:2]) for g in fleet.gws)
        self.broker = sum(_stat("/proc/%d/stat" % fleet.broker.pid)[:2])
        t = os.times()
        self.me = t.user + t.system
        self.busy, self.all = machine()
        self.wall = time.monotonic()

    def since(self, b):
        """({part: CPU seconds} over [b, self], wall seconds). "other work" is what the
        machine was busy with beyond these processes (another build, another benchmark)."""
        wall = self.wall - b.wall
        d = {"upstream loop thread": self.loop - b.loop,
             "upstream workers (the store's commits)": (self.upstream - b.upstream) -
                                                       (self.loop - b.loop),
             "PostgreSQL": self.pg - b.pg,
             "gateways": self.gws - b.gws,
             "broker": self.broker - b.broker,
             "this script": self.me - b.me}
        busy = (self.busy - b.busy) / max(1, self.all - b.all) * wall * (os.cpu_count() or 1)
        d["other work"] = max(0.0, busy - sum(d.values()))
        return d, wall


def cpu_line(d, wall):
    parts = ["%s %.2f s (%.0f%%)" % (k, v, 100 * v / wall) for k, v in d.items()
             if v >= 0.005]
    return ("    CPU over %.2f s (%% of one core): %s; the machine's %d cores %.0f%% busy"
            % (wall, ", ".join(parts), os.cpu_count(), 100 * busy_share(d, wall)))


def busy_share(d, wall):
    return sum(d.values()) / (wall * (os.cpu_count() or 1))


# --- one store -----------------------------------------------------------------------------


class Fleet:
    """A broker, an upstream on one store and N gateways, all owned by the harness."""

    def __init__(self, h, tag, store, pg, n):
        self.pg = pg
        self.broker = Broker(h, start=False)
        with open(self.broker.conf, "a") as f:
            f.write("max_queued_messages 1000000\n")
        self.broker.start()
        self.up = Daemon(h, store, "--rules", "off", "--serve-sync", "--sync-broker",
                         self.broker.uri, name="up-" + tag)
        self.gws = []
        for g in range(n):
            d = Daemon(h, h.path("gw-%s-%02d.db" % (tag, g)), "--rules", "off",
                       name="gw-%s-%02d" % (tag, g))
            d.root = d.status()["root"]
            d.expect(200, "POST", "/v1/import", tree_doc(d.root, g),
                     what="gateway %d's tree" % g)
            self.gws.append(d)

    def link(self):
        for d in self.gws:
            d.expect(201, "POST", "/v1/nodes", {
                "type": "sync", "parent": d.root, "id": self.link_id(d),
                "points": [{"type": "uri", "text": self.broker.uri},
                           {"type": "period", "value": PERIOD}]})

    @staticmethod
    def link_id(d):
        return "link-" + d.root[:8]

    def in_sync(self, d):
        g1 = d.status()["hash"]
        n = self.up.node(d.root)
        return n is not None and (n["hash"] == g1 or n["hash"] == d.status()["hash"])

    def hist_pending(self):
        """The gateways whose sync node does not say histPending 0 yet."""
        return [d.name for d in self.gws
                if d.points(self.link_id(d)).get("histPending", {}).get("value") != 0]

    def arrived(self, d, last):
        node, key, value = last
        r = http_request(self.up.port, "GET", "/v1/nodes/" + node, timeout=10)
        return r.status == 200 and any(p["type"] == "live" and p["key"] == key and
                                       p["value"] == value for p in r.json()["points"])

    def wait_applied(self, t0, lasts, accepted0, expected, what):
        """Polls the upstream until every gateway's last point is applied, then until the
        rows queued by then are on disk. Returns both times from t0."""
        deadline = t0 + ARRIVE_MAX
        todo = set(range(len(self.gws)))
        next_full = time.monotonic() + 1.0
        while todo:
            st = self.up.status()
            if (st["writes"]["accepted"] - accepted0 >= expected
                    or time.monotonic() >= next_full):
                next_full = time.monotonic() + 1.0
                todo = {i for i in todo if not self.arrived(self.gws[i], lasts[i])}
            if not todo:
                break
            check(time.monotonic() < deadline, "%s: the last points of %d gateways were not "
                  "on the upstream within %.0f s" % (what, len(todo), ARRIVE_MAX))
            time.sleep(POLL)
        applied = time.monotonic() - t0
        st = self.up.status()["store"]
        d0 = st["durableBatch"]
        while st["backlog"] != 0 and st["durableBatch"] < d0 + 2:
            check(time.monotonic() < deadline, "%s: the upstream's store did not commit "
                  "within %.0f s (%r)" % (what, ARRIVE_MAX, st))
            time.sleep(POLL)
            st = self.up.status()["store"]
        return applied, time.monotonic() - t0

    def wait_history(self, t0, what):
        """Once the gateways took every point: polls each gateway's sync node until its
        histAcked (written at each acknowledgement) reaches the last row of its history
        table. Returns the time from t0."""
        want = [db_query(d.db, "SELECT max(id) FROM history")[0][0] for d in self.gws]
        todo = set(range(len(self.gws)))

        def acked(i):
            d = self.gws[i]
            return d.points(self.link_id(d)).get("histAcked", {}).get("value", 0) >= want[i]

        deadline = t0 + ARRIVE_MAX
        while todo:
            todo = {i for i in todo if not acked(i)}
            check(not todo or time.monotonic() < deadline, "%s: the history of %d gateways "
                  "was not acknowledged within %.0f s" % (what, len(todo), ARRIVE_MAX))
            time.sleep(POLL if todo else 0)
        return time.monotonic() - t0

    def stop(self):
        for d in self.gws:
            d.stop()
        self.up.stop()
        self.broker.stop()


def limit_line(store_name, arrived, api, d, wall, total):
    """What limited a phase, read from its figures (see the module docstring)."""
    applied, durable = arrived[:2]
    pct = {k: 100 * v / wall for k, v in d.items()}
    store_cpu = d["upstream workers (the store's commits)"] + d["PostgreSQL"]
    why = []
    if api is not None and applied <= api * 1.1 + 0.1:
        why.append("the gateways' production: the upstream applied the last points %.0f ms "
                   "after the last API answer" % max(0, 1000 * (applied - api)))
    elif pct["upstream loop thread"] >= 85:
        why.append("the upstream's loop thread (busy %.0f%%: parsing pts, merging, hashing, "
                   "queueing rows)" % pct["upstream loop thread"])
    if durable > applied * 1.2 + 0.1:
        why.append("the %s store: on disk %.2f s after the last point was applied (it used "
                   "%.1f us of CPU a point%s)"
                   % (store_name, durable - applied, 1e6 * store_cpu / total,
                      ", %.0f%% of a core in PostgreSQL's processes" % pct["PostgreSQL"]
                      if d["PostgreSQL"] > 0 else ""))
    if busy_share(d, wall) >= 0.85:
        top = sorted(((v, k) for k, v in pct.items() if v >= 5), reverse=True)
        why.append("the machine's %d cores, %.0f%% busy: %s"
                   % (os.cpu_count(), 100 * busy_share(d, wall),
                      ", ".join("%s %.0f%%" % (k, v) for v, k in top)))
    if not why:
        why.append("nothing saturated in these figures (waits: broker round trips, commit "
                   "latency, the 5 ms pts flush)")
    return "    limited by: " + "; ".join(why)


def cpu_a_point(d, total):
    """Microseconds of CPU a point: every process of the benchmark, and the upstream's
    side alone (its threads and PostgreSQL's processes)."""
    up = sum(v for k, v in d.items() if k.startswith("upstream") or k == "PostgreSQL")
    return (1e6 * sum(v for k, v in d.items() if k != "other work") / total,
            1e6 * up / total)


def serve(h, r, kind, name, pg, n, points):
    """One half of a round: a fresh broker, upstream on the store `kind` and N gateways;
    prints its figures and returns them."""
    print("\n== round %d: upstream on %s, %d gateways ==" % (r + 1, name, n))
    t_start = time.monotonic()
    tag = "%s-%d" % (kind, r)
    if kind == "pg":
        # Each round's upstream gets an empty database of its own on the one server.
        db = "sprig_%d" % r
        pg.psql('CREATE DATABASE "%s" OWNER "%s";' % (db, pg.user), user="postgres",
                db="postgres")
        f = Fleet(h, tag, pg.uri.rsplit("/", 1)[0] + "/" + db, pg, n)
    else:
        f = Fleet(h, tag, h.path("up-%s.db" % tag), None, n)
    time.sleep(1.0)
    st0 = f.up.status()
    rss0 = rss_kb(f.up.proc.pid)
    t0 = time.monotonic()
    f.link()
    wait_until("the fleet converges on %s" % name,
               lambda: all(f.in_sync(d) for d in f.gws), SYNC_MAX, every=0.1)
    synced = time.monotonic() - t0
    wait_until(lambda: "the imports' history is acknowledged on %s: %s still pending"
               % (name, f.hist_pending()), lambda: not f.hist_pending(), SYNC_MAX, every=0.2)
    time.sleep(1.0)
    st1 = f.up.status()
    rss1 = rss_kb(f.up.proc.pid)
    per_nodes = (st1["nodes"] - st0["nodes"]) / n
    per_points = (st1["points"] - st0["points"]) / n
    mem = (rss1 - rss0) / n
    print("memory: upstream VmRSS %d kB before, %d kB with %d devices in sync: %.0f kB per "
          "device (each device's tree on the upstream: %.0f nodes, %.0f points); in sync "
          "%.2f s after the links were made" % (rss0, rss1, n, mem, per_nodes, per_points,
                                                 synced))

    # Live: the load through the gateways' APIs while the upstream runs.
    bodies, lasts = zip(*[load(g, points, g * 10**9) for g in range(n)])
    total = n * points
    acc0 = f.up.status()["writes"]["accepted"]
    c0 = Cpu(f)
    t0, threads, ends, errors = feed(f.gws, bodies)
    live = f.wait_applied(t0, lasts, acc0, total, "live on %s" % name)
    d, wall = Cpu(f).since(c0)
    api = join_feed(threads, ends, errors, ARRIVE_MAX) - t0
    live += (f.wait_history(t0, "live on %s" % name),)
    print("live: %d gateways x %d points = %d points, batches of %d through each gateway's "
          "API:\n    applied on the upstream %.2f s = %.0f points/s; on its disk %.2f s = "
          "%.0f points/s; history acknowledged %.2f s = %.0f points/s\n    the gateways' API "
          "calls alone: %.2f s = %.0f points/s"
          % (n, points, total, BATCH, live[0], total / live[0], live[1], total / live[1],
             live[2], total / live[2], api, total / api))
    print(cpu_line(d, wall))
    print("    CPU a point: %.1f us in all (other work aside), %.1f us on the upstream's side"
          % cpu_a_point(d, total))
    print(limit_line(name, live, api, d, wall, total))
    live_cpu = d

    # Backlog: the same load while the upstream is stopped; the clock runs from SIGCONT.
    bodies, lasts = zip(*[load(g, points, g * 10**9 + 5 * 10**8) for g in range(n)])
    acc0 = f.up.status()["writes"]["accepted"]
    f.up.proc.send(signal.SIGSTOP)
    try:
        t0, threads, ends, errors = feed(f.gws, bodies)
        produced = join_feed(threads, ends, errors, STOPPED_MAX) - t0
        time.sleep(2.0)
    finally:
        f.up.proc.send(signal.SIGCONT)
    c0 = Cpu(f)
    t0 = c0.wall
    backlog = f.wait_applied(t0, lasts, acc0, total, "backlog on %s" % name)
    d, wall = Cpu(f).since(c0)
    backlog += (f.wait_history(t0, "backlog on %s" % name),)
    print("backlog: the same %d points published while the upstream was stopped (the "
          "gateways' production alone: %.2f s = %.0f points/s), from its SIGCONT:\n    "
          "applied %.2f s = %.0f points/s; on its disk %.2f s = %.0f points/s; history "
          "acknowledged %.2f s = %.0f points/s"
          % (total, produced, total / produced, backlog[0], total / backlog[0], backlog[1],
             total / backlog[1], backlog[2], total / backlog[2]))
    print(cpu_line(d, wall))
    print("    CPU a point: %.1f us in all (other work aside), %.1f us on the upstream's side"
          % cpu_a_point(d, total))
    print(limit_line(name, backlog, None, d, wall, total))
    print("upstream after the load: VmRSS %d kB, peak (VmHWM) %d kB; %d live points a "
          "gateway in its tree" % (rss_kb(f.up.proc.pid), rss_kb(f.up.proc.pid, "VmHWM"),
                                   (f.up.status()["points"] - st1["points"]) // n))
    f.stop()
    print("(%s half: %.0f s)" % (name, time.monotonic() - t_start))
    return {"mem": mem, "nodes": per_nodes, "points": per_points, "live": live, "api": api,
            "backlog": backlog, "produced": produced, "total": total, "live_cpu": live_cpu,
            "backlog_cpu": d}


def summary(res, a, order):
    s, p = res["sqlite"], res["pg"]
    print("\n== PostgreSQL against SQLite, same run: %d gateways, %d points a gateway a "
          "phase, %d round(s) in the order %s ==" % (a.gateways, a.points, a.rounds, order))
    print("points/s, each round, then the ratio of PostgreSQL's to SQLite's over all "
          "rounds (points over time):")

    def rates(rs, key, i):
        return "/".join("%.0f" % (x["total"] / x[key][i]) for x in rs)

    def cpus(rs, key):
        return " / ".join("%.1f of %.1f" % cpu_a_point(x[key + "_cpu"], x["total"])[::-1]
                          for x in rs)

    def overall(rs, key, i):
        return sum(x["total"] for x in rs) / sum(x[key][i] for x in rs)

    for key in ("live", "backlog"):
        for i, what in enumerate(("applied", "on disk", "history acknowledged")):
            print("  %-8s %-21s SQLite %-15s PostgreSQL %-15s ratio %.2f%s"
                  % (key, what, rates(s, key, i), rates(p, key, i),
                     overall(p, key, i) / overall(s, key, i),
                     "  (goal >= 0.7)" if what == "on disk" else ""))
        print("  %-8s %-21s SQLite %s  PostgreSQL %s" % (
            key, "CPU a point, us", cpus(s, key), cpus(p, key)))
    print("  (CPU a point: the upstream's side, of all the benchmark's processes together)")
    print("  the gateways' API calls alone, live: SQLite %s, PostgreSQL %s points/s; with the "
          "upstream stopped: %s, %s"
          % ("/".join("%.0f" % (x["total"] / x["api"]) for x in s),
             "/".join("%.0f" % (x["total"] / x["api"]) for x in p),
             "/".join("%.0f" % (x["total"] / x["produced"]) for x in s),
             "/".join("%.0f" % (x["total"] / x["produced"]) for x in p)))
    print("memory per device: SQLite %s kB, PostgreSQL %s kB (a device: %.0f nodes, %.0f "
          "points on the upstream)" % ("/".join("%.0f" % x["mem"] for x in s),
                                       "/".join("%.0f" % x["mem"] for x in p),
                                       s[0]["nodes"], s[0]["points"]))


def bench():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sprig")
    ap.add_argument("--gateways", type=int, default=8, help="N (default 8)")
    ap.add_argument("--points", type=int, default=50000,
                    help="points written on each gateway in each phase (default 50,000)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds, each with both stores, the order swapped every round "
                    "(default 2: SQLite, PostgreSQL, PostgreSQL, SQLite)")
    ap.add_argument("--only", choices=("sqlite", "pg"), help="one store only")
    a = ap.parse_args()

    # A SIGTERM (make, a shell) ends the run through the harness's cleanup too.
    def on_term(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_term)
    check(a.gateways >= 1 and a.points >= 1 and a.rounds >= 1,
          "--gateways, --points and --rounds must be at least 1")
    sys.argv[1:] = [a.sprig]  # what the Harness reads
    print("machine: %d cores (%s), load average %.2f %.2f %.2f at the start. The gateways, "
          "the broker, the upstream, PostgreSQL and this script share them, so every figure "
          "below is of all of them together on this machine, not of one process alone."
          % (os.cpu_count(), ", ".join(str(c) for c in sorted(os.sched_getaffinity(0))),
             *os.getloadavg()))
    res = {"sqlite": [], "pg": []}
    order = []
    with Harness("bench-fleet") as h:
        pg = Postgres(h) if a.only != "sqlite" else None
        for r in range(a.rounds):
            for kind, name in (STORES if r % 2 == 0 else STORES[::-1]):
                if a.only in (None, kind):
                    res[kind].append(serve(h, r, kind, name, pg, a.gateways, a.points))
                    order.append(name)
        if pg is not None:
            pg.stop()
    if res["sqlite"] and res["pg"]:
        summary(res, a, ", ".join(order))


if __name__ == "__main__":
    main(bench)
