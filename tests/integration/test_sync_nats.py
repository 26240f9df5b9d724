"""Sync through a three-node NATS cluster's MQTT listeners (nats.py; DESIGN.md section 11:
a broker cluster the upstream workers share), with real `sprig run` processes (`--rules
off`). NATS 2.9 speaks MQTT 3.1.1 only and refuses '.' and ' ' in topics, so the device id
here is "gw-nats" and the topic prefix "sprig".

  upstream: `--sync-broker` node 1's listener alone;
  gateway:  a sync node whose uri lists node 0, node 2, node 1 (its own listener first, a
            node the upstream is not on; the messages cross the cluster).

It proves:
  1. both links fall back to MQTT 3.1.1 (each logs that the listener refused MQTT 5 and
     that it connected with 3.1.1; the gateway's sync node says protocol 3.1.1, broker
     node 0) and converge: the gateway's GET /v1/status hash equals the upstream's GET
     /v1/nodes/{its root} hash, and the sync node is insync;
  2. node 0 is killed with SIGKILL: the gateway moves to node 2, the next of its list
     (its broker point), with 3.1.1 again (or on to node 1, when node 2 drops the link
     while the cluster fails over), and points written on the gateway after the kill reach
     the upstream: they converge again (NATS may stop QoS 1 publishing for about 8 s while
     its streams elect new leaders, then closes the connections that wait for a PUBACK: the
     bound is 60 s). The time of the move and the brokers the gateway went through are
     printed;
  3. a gateway whose device id has a '.' (site.7): NATS closes its connection before
     answering its CONNECT; its sync node stays in state error saying so (and naming the
     device id as the likely cause), and nothing of it reaches the upstream.
Every daemon and NATS node is stopped by pid; every wait is bounded.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nats import NatsCluster  # noqa: E402
from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402
from test_sync_failover import equal, has_value, link, logged, set_point  # noqa: E402

PERIOD = 2            # s between two probes
CONVERGE_MAX = 30.0   # s for the first sync through the cluster
MOVE_MAX = 60.0       # s for the move after a node's death (NATS fails over in about 8 s)
LINK = "link"
DEVICE = "gw-nats"


def converged(what, gw, up, root, brokers, t0, timeout, marks=()):
    """Waits until the link is connected with MQTT 3.1.1 to one of brokers, every (node,
    type, value) of marks is on the upstream, the hashes are equal and the sync node is
    insync, still on one of brokers; returns the seconds since t0."""
    def on_one():
        st = link(gw)
        return st["broker"] in brokers and st["protocol"] == "3.1.1"
    wait_until(lambda: "%s: the sync node is connected to one of %s with MQTT 3.1.1 (%r)"
               % (what, brokers, link(gw)), on_one, timeout, 0.05)
    for nid, ptype, value in marks:
        wait_until(lambda: "%s: %s %s = %r reaches the upstream (%r)"
                   % (what, nid, ptype, value, link(gw)),
                   lambda: has_value(up, nid, ptype, value), timeout, 0.05)
    wait_until(lambda: "%s: the gateway's root hash equals the upstream's copy (%r)"
               % (what, link(gw)), lambda: equal(gw, up, root), timeout, 0.05)
    wait_until(lambda: "%s: the sync node reaches insync on one of %s (%r)"
               % (what, brokers, link(gw)),
               lambda: link(gw)["state"] == "insync" and on_one(), timeout, 0.05)
    return time.monotonic() - t0


def test():
    with Harness("sync-nats") as h:
        c = NatsCluster(h)
        n0, n1, n2 = (node.mqtt_uri for node in c.nodes)
        print("cluster ready in %.1f s: %s" % (c.start_seconds, " ".join(c.mqtt_uris)))
        up = Daemon(h, h.path("up.db"), "--rules", "off", "--serve-sync", "--sync-broker", n1,
                    name="upstream")
        gw = Daemon(h, h.path("gw.db"), "--rules", "off", name="gateway")
        root = gw.status()["root"]
        check("." not in root and " " not in root, "the gateway's root id %r has a '.'" % root)
        for i in range(5):
            gw.expect(201, "POST", "/v1/nodes", {
                "type": "group", "parent": root, "id": "tank-%d" % i,
                "points": [{"type": "level", "value": i}]})
        uris = ",".join((n0, n2, n1))
        t0 = time.monotonic()
        gw.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root, "id": LINK, "points": [
            {"type": "uri", "text": uris}, {"type": "period", "value": PERIOD},
            {"type": "deviceId", "text": DEVICE}]})
        took = converged("1. start", gw, up, root, (n0,), t0, CONVERGE_MAX)
        for d, uri in ((gw, n0), (up, n1)):
            logged(d, re.escape("%s refused MQTT 5; connecting again with MQTT 3.1.1" % uri),
                   "1. start")
            logged(d, re.escape("connected to %s (MQTT 3.1.1)" % uri), "1. start")
        st = {s["id"]: s for s in gw.status()["sync"]}[LINK]
        check(st.get("protocol") == "3.1.1" and st.get("broker") == n0,
              "1. /v1/status sync entry %r: expected broker %s, protocol 3.1.1" % (st, n0))
        print("1. both fell back to MQTT 3.1.1 and converged in %.2f s (gateway on node 0, "
              "upstream on node 1)" % took)

        # 2. Node 0 dies: the gateway moves to node 2, the next of its list, or on to node 1
        # when node 2 drops it while the cluster fails over.
        t0 = time.monotonic()
        c.kill(0)
        set_point(gw, "tank-1", "level", 101)
        set_point(gw, "tank-2", "level", 102)
        took = converged("2. node 0 killed", gw, up, root, (n2, n1), t0, MOVE_MAX,
                         [("tank-1", "level", 101), ("tank-2", "level", 102)])
        now_on = link(gw)["broker"]
        print("2. node 0 killed: the gateway moved to node %d and converged (2 points written "
              "after the kill) in %.2f s" % ((n0, n1, n2).index(now_on), took))
        moves = re.findall(r"sync link: connected to (\S+)", gw.proc.stderr())
        print("2. the gateway's connections: %s" % ", ".join(
            "node %d" % (n0, n1, n2).index(u) for u in moves))
        set_point(gw, "tank-3", "level", 103)
        t1 = time.monotonic()
        converged("2. a live point", gw, up, root, (n2, n1), t1, CONVERGE_MAX,
                  [("tank-3", "level", 103)])
        print("2. a point set on the gateway then reached the upstream in %.3f s"
              % (time.monotonic() - t1))
        n = len(re.findall(r"sync \S+: connected to ", gw.proc.stderr()))
        check(n <= 8, "the gateway connected %d times, expected a few:\n%s"
              % (n, gw.proc.stderr_tail(20)))
        print("move to another NATS node: %.2f s (kill -9 -> converged, new points included)"
              % took)

        # 3. A device id with '.': NATS closes the connection before answering its CONNECT
        # (the client id is the device id); the link says so and never reaches the upstream.
        gw2 = Daemon(h, h.path("gw2.db"), "--rules", "off", name="gateway2")
        root2 = gw2.status()["root"]
        gw2.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root2, "id": LINK,
                                              "points": [{"type": "uri", "text": n1},
                                                         {"type": "deviceId", "text": "site.7"}]})
        want = "closed the connection after the MQTT 3.1.1 CONNECT without answering it"
        wait_until(lambda: "3. the sync node of a gateway with device id site.7 reaches state "
                   "error saying %r (%r)" % (want, link(gw2)),
                   lambda: link(gw2)["state"] == "error" and want in (link(gw2)["error"] or ""),
                   15, 0.05)
        check(up.node(root2) is None, "3. the gateway with device id site.7 reached the upstream")
        print("3. device id site.7: state error: %s" % link(gw2)["error"])
        gw2.stop()

        gw.stop()
        up.stop()
        c.stop()
        for db in ("gw.db", "up.db", "gw2.db"):
            h.verify(h.path(db), expect=0)


if __name__ == "__main__":
    main(test)
