"""Sync with the upstream on PostgreSQL (`sprig run --serve-sync --store postgresql://...`,
DESIGN.md section 11): test_sync.py's scenario with the upstream's store on a real
PostgreSQL 15 (pg.py) instead of a SQLite file, against a real mosquitto (broker.py):
  1. the initial sync of a 1,000-node gateway (and a small second gateway) converges, and
     each row in PostgreSQL names its device: every node of a gateway's tree has that
     gateway's root id in the device column (as many as the gateway's own store holds),
     the upstream's own nodes have "";
  2. live changes both ways converge, each within test_sync's latency bound;
  3. a partition (the broker stopped while both sides write) converges, conflicts holding
     the later write, and every history sample the gateway took is in PostgreSQL's history
     exactly once;
  4. PostgreSQL stopped for 3 s while the gateway's demo keeps writing and syncing, then
     started again: the upstream's store recovers by itself, the hashes converge, and the
     gateway's history is in PostgreSQL exactly once;
  5. backpressure: PostgreSQL stopped again while 150,000 points are written on the
     gateway: the upstream stops reading from the broker once its store has 100,000 rows
     waiting (logged), so its backlog stays near that instead of holding every point in
     memory; once PostgreSQL is back it resumes (logged) and both sides converge;
  6. the upstream restarted (SIGTERM, then a new process on the same database) loads the
     gateways' trees from PostgreSQL with the same hashes and stays in sync: a new point on
     the gateway arrives.
Every process is stopped by pid; every wait is bounded (test_sync's bounds).
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_sync  # noqa: E402
from broker import Broker  # noqa: E402
from pg import Postgres  # noqa: E402
from sprigtest import Harness, check, db_query, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402
BACKLOG_MAX = 100000  # the store rows above which a link stops reading (SYNC_BACKLOG_MAX)

from test_sync import CONVERGE_MAX, Pair, initial_sync, live_changes, partition, set_point, timed  # noqa: E402,E501


def pg_rows(pg):
    """upstream_rows for an upstream on pg: each row as JSON, so times and doubles come
    back exact and texts may hold any character."""
    def rows(up, sql):
        out = pg.psql("SELECT row_to_json(x) FROM (%s) x" % sql)
        return [tuple(json.loads(ln).values()) for ln in out.splitlines() if ln.strip()]
    return rows


def test():
    with Harness("sync_pg") as h:
        pg = Postgres(h)
        test_sync.upstream_rows = pg_rows(pg)
        broker = Broker(h)
        up_args = ("--rules", "off", "--serve-sync", "--sync-broker", broker.uri)
        up = Daemon(h, pg.uri, *up_args, name="upstream")
        gw = Daemon(h, h.path("gw.db"), "--demo", "--demo-rate", "5", "--rules", "off",
                    name="gateway")
        gw2 = Daemon(h, h.path("gw2.db"), "--rules", "off", name="gateway2")

        pair, pair2 = initial_sync(h, broker, up, gw, gw2)
        def devices():
            return dict(ln.split("|") for ln in
                        pg.psql("SELECT device, count(*) FROM nodes GROUP BY device").split())
        # the hashes match in memory first; the rows reach PostgreSQL with the next commit
        wait_until("both gateways' nodes are in PostgreSQL",
                   lambda: set(devices()) >= {pair.root, pair2.root}, 10)
        by_device = devices()
        for p in (pair, pair2):
            want = db_query(p.gw.db, "SELECT count(*) FROM nodes")[0][0]
            check(int(by_device.get(p.root, 0)) == want,
                  "PostgreSQL holds %s nodes with device %s, its gateway %d (all devices: %r)"
                  % (by_device.get(p.root, 0), p.root, want, by_device))
        own = int(by_device.get("", 0))
        check(set(by_device) == {"", pair.root, pair2.root} and own >= 1,
              "devices in PostgreSQL's nodes: %r, expected the upstream's own (\"\") and the "
              "two gateways' roots" % by_device)
        edges = pg.psql("SELECT count(*) FROM edges WHERE device = '%s' AND down = '%s'"
                        % (pair.root, pair.root)).strip()
        check(edges == "1", "the edge from the upstream's root to gateway 1's root is not "
              "in gateway 1's rows (%s found)" % edges)
        print("devices in PostgreSQL: %r" % by_device)
        live_changes(pair)
        partition(pair, broker)

        # PostgreSQL goes away under the upstream and comes back.
        pg.stop()
        time.sleep(3)
        pg.start()
        took = pair.wait_equal("after PostgreSQL's restart", CONVERGE_MAX)
        print("PostgreSQL restarted under sync: in sync %.2f s after its start" % took)
        last_row = db_query(gw.db, "SELECT ifnull(max(id), 0) FROM history")[0][0]
        test_sync.history_once(pair, last_row)

        # Backpressure: the store gone and a flood of points on the gateway.
        pg.stop()
        wait_until("the upstream's store is failing",
                   lambda: up.status()["store"]["state"] != "ok", 15)
        leaf = test_sync.leaf(7)
        for b in range(15):
            gw.expect(200, "POST", "/v1/nodes/%s/points" % leaf,
                      [{"type": "flood", "key": str(i % 50), "value": b * 10000 + i}
                       for i in range(10000)])
        wait_until("the upstream stops reading from the broker",
                   lambda: "stops reading from the broker" in up.proc.stderr(), 20)
        most, t_end = 0, time.monotonic() + 4
        while time.monotonic() < t_end:
            most = max(most, up.status()["store"]["backlog"])
            time.sleep(0.1)
        print("backpressure: the upstream's store backlog peaked at %d rows with PostgreSQL "
              "down (150,000 points written on the gateway)" % most)
        check(most <= BACKLOG_MAX + 30000,
              "with its store down the upstream let %d rows pile up (it should stop reading "
              "near %d)" % (most, BACKLOG_MAX))
        pg.start()
        wait_until("the upstream resumes reading",
                   lambda: "resumes reading from the broker" in up.proc.stderr(), 30)
        wait_until("the flood's last point reaches the upstream",
                   lambda: test_sync.pval(up, leaf, "flood") is not None, CONVERGE_MAX)
        took = pair.wait_equal("after the flood", 60)
        print("backpressure: in sync %.2f s after the flood's last point arrived" % took)

        # The upstream restarted on the same database: it loads both trees from PostgreSQL.
        hashes = {p.root: test_sync.node(up, p.root)["hash"] for p in (pair, pair2)}
        up.stop()
        up = Daemon(h, pg.uri, *up_args, name="upstream-2")
        pair.up = pair2.up = up
        for p in (pair, pair2):
            n = test_sync.node(up, p.root)
            check(n is not None, "the restarted upstream has no node %s" % p.root)
        check(test_sync.node(up, pair2.root)["hash"] == hashes[pair2.root],
              "idle gateway 2's tree has hash %s after the upstream's restart, %s before"
              % (test_sync.node(up, pair2.root)["hash"], hashes[pair2.root]))
        took = pair.wait_equal("after the upstream's restart", CONVERGE_MAX)
        print("upstream restarted on PostgreSQL: in sync again %.2f s after its start" % took)
        leaf = test_sync.leaf(5)
        timed("a point set on the gateway reaches the restarted upstream",
              lambda: set_point(pair.gw, leaf, "afterRestart", 42.0),
              lambda: test_sync.pval(up, leaf, "afterRestart") == 42.0)
        pair.wait_equal("after a write past the upstream's restart", CONVERGE_MAX)
        pair2.wait_equal("gateway 2 after the upstream's restart", CONVERGE_MAX)
        for d in (gw, gw2, up):
            d.stop()


if __name__ == "__main__":
    main(test)
