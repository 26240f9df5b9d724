"""The fallback from MQTT 5 to 3.1.1 (DESIGN.md section 5: MQTT 5 with a fallback to 3.1.1
for brokers that offer only that), with one real mosquitto (broker.py) behind three TCP
fronts (broker.Front; mosquitto itself cannot refuse MQTT 5): "connack" answers an MQTT 5
CONNECT with a 3.1.1 CONNACK refusing the protocol version (as NATS does), "close" closes
the connection without a CONNACK (as other 3.1.1 brokers do), "pass" passes every
version. Real `sprig run` processes (`--rules off`):

  upstream: `--sync-broker` the "connack" front;
  gateway:  a sync node whose uri is "the close front, the pass front".

It proves:
  1. both fall back to 3.1.1, each after one MQTT 5 CONNECT (the fronts count them), log
     why, and converge (the gateway's GET /v1/status hash equals the upstream's GET
     /v1/nodes/{its root} hash, insync); the gateway's sync node says protocol 3.1.1 in its
     points, in GET /v1/status and in `sprig sync status`;
  2. a reconnection to a broker that took 3.1.1 starts with 3.1.1: the "connack" front
     drops its connections; the upstream connects again with 3.1.1 only (no second MQTT 5
     CONNECT), and a change made upstream reaches the gateway;
  3. a move to another broker tries MQTT 5 first: the "close" front stops; the gateway
     moves to the "pass" front with MQTT 5 (protocol 5), and a new point arrives;
  4. back on the broker that took 3.1.1 (the "close" front listens again, the "pass" one
     stops): the gateway starts there with 3.1.1 (still one MQTT 5 CONNECT in all), and a
     new point arrives.
Every daemon and broker is stopped by pid; every wait is bounded.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from broker import Broker, Front  # noqa: E402
from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402
from test_sync_failover import equal, has_value, link, logged, set_point  # noqa: E402

PERIOD = 2          # s between two probes
CONVERGE_MAX = 30.0
LINK = "link"


def converged(what, gw, up, root, broker, protocol, marks=()):
    t0 = time.monotonic()

    def on_it():
        st = link(gw)
        return st["broker"] == broker and st["protocol"] == protocol
    wait_until(lambda: "%s: the sync node is connected to %s with MQTT %s (%r)"
               % (what, broker, protocol, link(gw)), on_it, CONVERGE_MAX, 0.02)
    for d, nid, ptype, value in marks:
        wait_until(lambda: "%s: %s %s = %r reaches %s (%r)"
                   % (what, nid, ptype, value, d.name, link(gw)),
                   lambda: has_value(d, nid, ptype, value), CONVERGE_MAX, 0.02)
    wait_until(lambda: "%s: the gateway's root hash equals the upstream's copy (%r)"
               % (what, link(gw)), lambda: equal(gw, up, root), CONVERGE_MAX, 0.02)
    wait_until(lambda: "%s: the sync node reaches insync (%r)" % (what, link(gw)),
               lambda: link(gw)["state"] == "insync" and on_it(), CONVERGE_MAX, 0.02)
    return time.monotonic() - t0


def counts(front, want, what):
    check(front.connects == want, "%s: the %s front saw CONNECTs by protocol level %r, "
          "expected %r" % (what, front.mode, front.connects, want))


def test():
    with Harness("sync-mqtt311") as h:
        b = Broker(h)
        fc = Front(h, b, "connack")
        fx = Front(h, b, "close")
        fp = Front(h, b, "pass")
        up = Daemon(h, h.path("up.db"), "--rules", "off", "--serve-sync", "--sync-broker",
                    fc.uri, name="upstream")
        gw = Daemon(h, h.path("gw.db"), "--rules", "off", name="gateway")
        root = gw.status()["root"]
        for i in range(3):
            gw.expect(201, "POST", "/v1/nodes", {
                "type": "group", "parent": root, "id": "tank-%d" % i,
                "points": [{"type": "level", "value": i}]})
        uris = "%s,%s" % (fx.uri, fp.uri)
        gw.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root, "id": LINK, "points": [
            {"type": "uri", "text": uris}, {"type": "period", "value": PERIOD},
            {"type": "deviceId", "text": "gw-311"}]})

        # 1. Both fall back.
        took = converged("1. start", gw, up, root, fx.uri, "3.1.1")
        logged(up, re.escape("%s refused MQTT 5; connecting again with MQTT 3.1.1" % fc.uri),
               "1. start")
        logged(up, re.escape("connected to %s (MQTT 3.1.1)" % fc.uri), "1. start")
        logged(gw, re.escape("%s closed the connection after an MQTT 5 CONNECT; connecting "
                             "again with MQTT 3.1.1" % fx.uri), "1. start")
        logged(gw, re.escape("connected to %s (MQTT 3.1.1)" % fx.uri), "1. start")
        counts(fc, {5: 1, 4: 1}, "1. start")
        counts(fx, {5: 1, 4: 1}, "1. start")
        st = {s["id"]: s for s in gw.status()["sync"]}[LINK]
        check(st.get("protocol") == "3.1.1" and st.get("broker") == fx.uri,
              "1. /v1/status sync entry %r: expected broker %s, protocol 3.1.1" % (st, fx.uri))
        out = gw.cli("sync", "status").stdout
        check(re.search(r"^  protocol\s+3\.1\.1$", out, re.M),
              "1. sprig sync status does not show protocol 3.1.1:\n%s" % out)
        print("1. the upstream (CONNACK refusing MQTT 5) and the gateway (connection closed "
              "after the MQTT 5 CONNECT) fell back to 3.1.1 and converged in %.2f s" % took)

        # 2. The same broker again: 3.1.1 from the start.
        fc.drop()
        logged(up, "disconnected from " + re.escape(fc.uri), "2. drop")
        wait_until(lambda: "2. the upstream connects again through the connack front (%r)"
                   % fc.connects, lambda: fc.connects.get(4, 0) >= 2, CONVERGE_MAX, 0.02)
        set_point(up, "tank-0", "level", 200)
        took = converged("2. reconnected", gw, up, root, fx.uri, "3.1.1",
                         [(gw, "tank-0", "level", 200)])
        counts(fc, {5: 1, 4: 2}, "2. reconnected")
        print("2. the upstream connected again to the broker that took 3.1.1 with 3.1.1 "
              "only; a change made upstream reached the gateway (%.3f s)" % took)

        # 3. Another broker: MQTT 5 first.
        fx.stop()
        set_point(gw, "tank-1", "level", 101)
        took = converged("3. moved", gw, up, root, fp.uri, "5", [(up, "tank-1", "level", 101)])
        counts(fp, {5: 1}, "3. moved")
        print("3. the close front stopped: the gateway moved to the pass front with MQTT 5 "
              "and converged in %.2f s" % took)

        # 4. Back on the broker that took 3.1.1: 3.1.1 from the start.
        fx.start()
        fp.stop()
        set_point(gw, "tank-2", "level", 102)
        took = converged("4. back", gw, up, root, fx.uri, "3.1.1", [(up, "tank-2", "level", 102)])
        counts(fx, {5: 1, 4: 2}, "4. back")
        print("4. the pass front stopped: the gateway went back to the close front with "
              "3.1.1 at once and converged in %.2f s" % took)
        gw.stop()
        up.stop()
        for db in ("gw.db", "up.db"):
            h.verify(h.path(db), expect=0)


if __name__ == "__main__":
    main(test)
