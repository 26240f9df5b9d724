"""Benchmark of sync over MQTT (DESIGN.md section 5), against a real mosquitto on loopback:
  1. a gateway with 10,000 nodes (3 levels of groups) syncs to an empty upstream: the
     bytes and time of sending the whole tree;
  2. for k = 1, 10, 100: with the broker stopped, k nodes change on the gateway; the
     broker comes back; the bytes (both directions, from the gateway's counters) and the
     time until both root hashes are equal again, next to the whole tree's bytes
     (goal for k = 10: at most 5%);
  3. live forwarding: 100,000 points written on the gateway through its API (batches of
     10,000) reach the upstream, points/s (bounded by the API: the calls alone are
     printed too); then 100,000 more while the upstream is stopped (SIGSTOP), so they
     wait in the broker as the pts messages the gateway made, and the points/s from the
     upstream's SIGCONT until the last is applied; next to a bare libmosquitto loop of
     100-byte QoS 1 messages (build/bench_mqtt) in the same run.
The bytes of each phase come from the gateway's bytesUp/bytesDown and, by message kind,
its bytesByKind, read once they stand still (they are written once a second).
Not a test: prints figures for the README.

usage: /usr/bin/python3 tests/bench/bench_sync.py build/sprig build/bench_mqtt
"""
import json
import os
import signal
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
    kinds = {k: (by.get("up", {}).get(k, 0), by.get("down", {}).get(k, 0)) for k in KINDS}
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
    """"kind up/down" for each kind with bytes since before."""
    out = []
    for k in KINDS:
        u, d = kinds[k]
        if before:
            u, d = u - before[k][0], d - before[k][1]
        if u or d:
            out.append("%s %d/%d" % (k, u, d))
    return " ".join(out)


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
        wait_until("the first sync's history is uploaded",
                   lambda: gw.points("up1").get("histPending", {}).get("value") == 0, 300)
        total, kinds = settled(gw)
        whole = total - sum(kinds["hist"]) - sum(kinds["hack"])
        print("whole tree: %d nodes, %d bytes (and %d of its import's history), %.2f s to "
              "converge from empty\n  by kind, up/down: %s"
              % (NODES + 110, whole, total - whole, dt, by_kind(kinds)))
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
                  "%.2f s from the broker's return to equal hashes\n  by kind, up/down: %s"
                  % (k, used, 100.0 * used / whole, dt, by_kind(kinds, kinds0)))
        # Live forwarding, fed through the gateway's API in batches of 10,000 points: the
        # time until the last is on the upstream, and the time of the API calls alone.
        n, batch = 100000, 10000

        def feed(base):
            t = time.monotonic()
            for s in range(0, n, batch):
                gw.expect(200, "POST", "/v1/nodes/n00001/points",
                          [{"type": "live", "key": str(i % 50), "value": base + s + i}
                           for i in range(batch)])
            return time.monotonic() - t

        def arrived(last):
            wait_until("the last live point reaches the upstream",
                       lambda: any(p["type"] == "live" and p["value"] == last
                                   for p in up.expect(200, "GET", "/v1/nodes/n00001")["points"]),
                       60, every=0.01)

        pts0 = counters(gw)[1]["pts"][0]
        t0 = time.monotonic()
        posted = feed(0)
        arrived(n - 1)
        dt = time.monotonic() - t0
        # Through the broker under load, without the API's pace: the upstream is stopped
        # (SIGSTOP) while the gateway takes and publishes the points, the broker queues
        # them, and the clock runs from the upstream's SIGCONT until the last is applied.
        up.proc.send(signal.SIGSTOP)
        feed(1000000)
        time.sleep(2)
        t0 = time.monotonic()
        up.proc.send(signal.SIGCONT)
        arrived(1000000 + n - 1)
        drained = time.monotonic() - t0
        per_point = (settled(gw)[1]["pts"][0] - pts0) / (2.0 * n)
        bare = subprocess.run([mqtt, "127.0.0.1", str(b.port), "100000", "100"],
                              capture_output=True, text=True, timeout=120)
        rate = float(bare.stdout.strip() or 0)
        print("live, fed through the gateway's API: %d points in %.2f s = %.0f points/s (the API "
              "calls alone: %.0f points/s)" % (n, dt, n / dt, n / posted))
        print("live, through the broker from a backlog: %d points in %.2f s = %.0f points/s, "
              "%.0f bytes a point in pts messages of up to 64 KiB" % (n, drained, n / drained,
                                                                     per_point))
        print("bare libmosquitto QoS 1 loop of 100-byte messages: %s messages/s; ratio of the "
              "backlog's points/s to it: %.1f" % (bare.stdout.strip() or "failed: " +
                                                  bare.stderr.strip(),
                                                  n / drained / rate if rate else 0))

if __name__ == "__main__":
    main(bench)
