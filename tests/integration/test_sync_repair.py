"""Acceptance: the bytes of a repair after one change grow with the change, not with the
tree (DESIGN.md section 5), against a real mosquitto and a real upstream
(`sprig run --serve-sync`):
  - a gateway with a tree of 10 x 10 x 10 leaves (1,110 nodes) syncs to an empty upstream;
    its sync node's bytesByKind adds up, kind by kind, to its bytesUp and bytesDown, and
    names the kinds of that first sync (node, kids, hist);
  - once the first sync's history is uploaded (histPending 0), the broker stops, one leaf
    changes on the gateway, the broker comes back: the hashes match again, the change is
    on the upstream, and the bytes the gateway sent and received from the broker's stop
    until its counters stand still are under 5% of the first sync's bytes for the tree
    (its history upload apart), with no more than two `node` messages' worth of `node`
    bytes (the changed leaf and its answer) and `hist` bytes of one sample, not of the
    tree's;
  - the same after one change on the upstream side of the tree (the other direction).
The counters are read once they stand still for a second, not after a fixed sleep; the
daemons and the broker are stopped by pid; every wait is bounded.
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402
from broker import Broker  # noqa: E402

T0 = "2026-01-01T00:00:00.000000001Z"


def tree_doc(root):
    """10 groups x 10 groups x 10 leaves under root, as one import document."""
    def pt(ptype, value=0, text=""):
        return {"type": ptype, "key": "0", "time": T0, "value": value, "text": text,
                "tombstone": 0, "origin": ""}
    nodes, edges = [], []
    n = 0
    for a in range(10):
        ga = "g%d" % a
        nodes.append({"id": ga, "type": "group", "points": [pt("description", text=ga)]})
        edges.append({"up": root, "down": ga, "points": [pt("tombstone")]})
        for b in range(10):
            gb = "g%d-%d" % (a, b)
            nodes.append({"id": gb, "type": "group", "points": [pt("description", text=gb)]})
            edges.append({"up": ga, "down": gb, "points": [pt("tombstone")]})
            for _ in range(10):
                leaf = "n%04d" % n
                n += 1
                nodes.append({"id": leaf, "type": "group",
                              "points": [pt("description", text="leaf"), pt("setpoint", n)]})
                edges.append({"up": gb, "down": leaf, "points": [pt("tombstone")]})
    return {"root": root, "nodes": nodes, "edges": edges}


def counters(gw):
    """(bytesUp + bytesDown, {kind: bytes both ways}, histPending, raw points)."""
    p = gw.points("up1")
    by = json.loads(p.get("bytesByKind", {}).get("text") or "{}")
    kinds = {}
    for d in ("up", "down"):
        for k, v in by.get(d, {}).items():
            kinds[k] = kinds.get(k, 0) + v
    total = p.get("bytesUp", {}).get("value", 0) + p.get("bytesDown", {}).get("value", 0)
    return total, kinds, p.get("histPending", {}).get("value"), p, by


def still(gw, what):
    """The counters once two readings 1.1 s apart (they are written once a second) agree."""
    last = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1.1)
        now = counters(gw)
        if last is not None and now[:3] == last[:3]:
            return now
        last = now
    raise AssertionError("the gateway's sync counters did not stand still within 60 s (%s): %r"
                         % (what, last[:3]))


def diff(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) != a.get(k, 0)}


def test():
    with Harness("sync_repair") as h:
        b = Broker(h)
        up = Daemon(h, h.path("up.db"), "--rules", "off", "--serve-sync", "--sync-broker",
                    b.uri, name="up")
        gw = Daemon(h, h.path("gw.db"), "--rules", "off", name="gw")
        root = gw.status()["root"]
        gw.expect(200, "POST", "/v1/import", tree_doc(root), what="import of the test tree")
        gw.expect(201, "POST", "/v1/nodes", {"id": "up1", "type": "sync", "parent": root,
                                             "points": [{"type": "uri", "text": b.uri}]})

        def equal():
            r = up.get("/v1/nodes/" + root)
            return r.status == 200 and gw.status()["hash"] == r.json()["hash"]

        wait_until("the first sync converges", equal, 120, every=0.2)
        wait_until("the first sync's history is uploaded (histPending 0)",
                   lambda: counters(gw)[2] == 0, 120, every=0.2)
        whole, kinds, _, pts, by = still(gw, "after the first sync")
        for d, total in (("up", "bytesUp"), ("down", "bytesDown")):
            check(sum(by.get(d, {}).values()) == pts[total]["value"],
                  "bytesByKind %r does not add up to %s = %r" % (by, total, pts[total]["value"]))
        check(all(kinds.get(k, 0) > 0 for k in ("node", "kids", "hist")),
              "the first sync's bytesByKind lacks node, kids or hist: %r" % by)
        node_msg = kinds["node"] / 1110
        tree = whole - kinds["hist"] - kinds.get("hack", 0)
        print("first sync: %d bytes (%d without its history), by kind %r" % (whole, tree, kinds))

        for where, changed in (("gateway", gw), ("upstream", up)):
            b.stop()
            before, kinds0, _, _, _ = still(gw, "with the broker stopped")
            changed.expect(200, "POST", "/v1/nodes/n0500/points",
                           [{"type": "setpoint", "value": 4242 if where == "gateway" else 4343}])
            b.start()
            want = 4242 if where == "gateway" else 4343
            other = up if where == "gateway" else gw
            wait_until("one change on the %s is repaired" % where,
                       lambda: equal() and other.points("n0500").get("setpoint", {})
                       .get("value") == want, 60, every=0.1)
            after, kinds1, _, _, _ = still(gw, "after the repair")
            used, by_kind = after - before, diff(kinds0, kinds1)
            print("one change on the %s: %d bytes (%.2f%% of the first sync's tree), by kind %r"
                  % (where, used, 100.0 * used / tree, by_kind))
            check(used < 0.05 * tree,
                  "one change on the %s: the repair took %d bytes, %.1f%% of the first sync's "
                  "%d for the tree (at most 5%%); by kind %r"
                  % (where, used, 100.0 * used / tree, tree, by_kind))
            check(by_kind.get("node", 0) <= 2 * node_msg + 4096,
                  "one change on the %s: %d bytes of node messages, more than two nodes' "
                  "worth (%.0f bytes each on average); by kind %r"
                  % (where, by_kind.get("node", 0), node_msg, by_kind))
            check(by_kind.get("hist", 0) < 0.01 * kinds["hist"] + 2048,
                  "one change on the %s: %d bytes of history, more than one sample's; by kind %r"
                  % (where, by_kind.get("hist", 0), by_kind))

        gw.stop()
        up.stop()
        b.stop()


if __name__ == "__main__":
    main(test)
