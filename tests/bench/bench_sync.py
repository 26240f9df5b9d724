"""Benchmark of sync over MQTT (DESIGN.md section 5), against a real mosquitto on loopback:
  1. a gateway with 10,000 nodes (3 levels of groups) syncs to an empty upstream: the
     bytes and time of sending the whole tree;
  2. for k = 1, 10, 100: with the broker stopped, k nodes change on the gateway; the
     broker comes back; the bytes (both directions, from the gateway's counters) and the
     time until both root hashes are equal again, next to the whole tree's bytes
     (goal for k = 10: at most 5%);
  3. live forwarding: points written on the gateway through its API reach the upstream,
     points/s, next to a bare libmosquitto publish loop of 100-byte QoS 1 messages
     (build/bench_mqtt) in the same run.
Not a test: prints figures for the README.

usage: /usr/bin/python3 tests/bench/bench_sync.py build/sprig build/bench_mqtt
"""
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from sprigtest import Harness, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402
from broker import Broker  # noqa: E402

NODES = 10000


def tree_docs(root):
    """10 groups x 10 groups x 100 leaves = 10,000 leaves (plus 110 groups), as one
    import document per top group (the API takes bodies up to 1 MiB)."""
    docs = []
    t = "2026-01-01T00:00:00.000000001Z"

    def pt(ptype, value=0, text=""):
        return {"type": ptype, "key": "0", "time": t, "value": value, "text": text,
                "tombstone": 0, "origin": ""}
    n = 0
    for a in range(10):
        nodes, edges = [], []
        docs.append({"root": root, "nodes": nodes, "edges": edges})
        ga = "g%d" % a
        nodes.append({"id": ga, "type": "group", "points": [pt("description", text=ga)]})
        edges.append({"up": root, "down": ga, "points": [pt("tombstone")]})
        for b in range(10):
            gb = "g%d-%d" % (a, b)
            nodes.append({"id": gb, "type": "group", "points": [pt("description", text=gb)]})
            edges.append({"up": ga, "down": gb, "points": [pt("tombstone")]})
            for c in range(NODES // 100):
                leaf = "n%05d" % n
                n += 1
                nodes.append({"id": leaf, "type": "group",
                              "points": [pt("description", text="leaf"), pt("setpoint", n)]})
                edges.append({"up": gb, "down": leaf, "points": [pt("tombstone")]})
    return docs


KINDS = ("pts", "probe", "match", "wait", "kids", "node", "need", "hist", "hack", "other")


def counters(gw):
    """The gateway's bytes both ways, in all and by message kind (its bytesByKind)."""
    p = gw.points("up1")
    total = sum(p.get(k, {}).get("value", 0) for k in ("bytesUp", "bytesDown"))
    by = json.loads(p.get("bytesByKind", {}).get("text") or "{}")
    kinds = {k: by.get("up", {}).get(k, 0) + by.get("down", {}).get(k, 0) for k in KINDS}
    return total, kinds


def settled(gw):
    """The counters once they are written (once a second) and stay still."""
    last = None
    for _ in range(20):
        time.sleep(1.1)
        now = counters(gw)
        if now == last:
            return now
        last = now
    return last


def by_kind(kinds, before=None):
    return " ".join("%s %d" % (k, kinds[k] - (before[k] if before else 0)) for k in KINDS
                    if kinds[k] - (before[k] if before else 0) != 0)


def equal(gw, up, root):
    r = up.get("/v1/nodes/" + root)
    return r.status == 200 and gw.status()["hash"] == r.json()["hash"]


def bench():
    sprig, mqtt = sys.argv[1], sys.argv[2]
    with Harness("bench-sync") as h:
        b = Broker(h)
        up = Daemon(h, h.path("up.db"), "--rules", "off", "--serve-sync", "--sync-broker",
                    b.uri, name="up")
        gw = Daemon(h, h.path("gw.db"), "--rules", "off", name="gw")
        root = gw.status()["root"]
        for doc in tree_docs(root):
            gw.expect(200, "POST", "/v1/import", doc, what="import of the bench tree")
        t0 = time.monotonic()
        gw.expect(201, "POST", "/v1/nodes", {"id": "up1", "type": "sync", "parent": root,
                                             "points": [{"type": "uri", "text": b.uri},
                                                        {"type": "period", "value": 1}]})
        wait_until("the first sync converges", lambda: equal(gw, up, root), 300, every=0.2)
        dt = time.monotonic() - t0
        whole, kinds = settled(gw)
        print("whole tree: %d nodes, %d bytes, %.2f s to converge from empty\n  by kind: %s"
              % (NODES + 110, whole, dt, by_kind(kinds)))
        for k in (1, 10, 100):
            b.stop()
            for i in range(k):
                gw.expect(200, "POST", "/v1/nodes/n%05d/points" % (i * 97 % NODES),
                          [{"type": "setpoint", "value": 1000 + k * 1000 + i}])
            before, kinds0 = settled(gw)
            t0 = time.monotonic()
            b.start()
            wait_until("k=%d converges" % k, lambda: equal(gw, up, root)
                       and gw.points("up1").get("state", {}).get("text") == "insync", 120,
                       every=0.05)
            dt = time.monotonic() - t0
            after, kinds = settled(gw)
            used = after - before
            print("k=%3d changed while disconnected: %7d bytes (%.2f%% of the whole tree), "
                  "%.2f s from the broker's return to equal hashes\n  by kind: %s"
                  % (k, used, 100.0 * used / whole, dt, by_kind(kinds, kinds0)))
        # Live forwarding.
        n, batch = 20000, 1000
        t0 = time.monotonic()
        for s in range(0, n, batch):
            gw.expect(200, "POST", "/v1/nodes/n00001/points",
                      [{"type": "live", "key": str(i % 50), "value": s + i}
                       for i in range(batch)])
        last = n - 1
        wait_until("the last live point reaches the upstream",
                   lambda: any(p["type"] == "live" and p["value"] == last
                               for p in up.expect(200, "GET", "/v1/nodes/n00001")["points"]),
                   60, every=0.01)
        dt = time.monotonic() - t0
        bare = subprocess.run([mqtt, "127.0.0.1", str(b.port), "100000", "100"],
                              capture_output=True, text=True, timeout=120)
        print("live: %d points through the broker in %.2f s = %.0f points/s; bare libmosquitto "
              "QoS 1 loop of 100-byte messages: %s messages/s"
              % (n, dt, n / dt, bare.stdout.strip() or "failed: " + bare.stderr.strip()))


if __name__ == "__main__":
    main(bench)
