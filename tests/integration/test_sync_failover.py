"""A sync link's list of brokers (README "Sync: gateways and the cloud"), with two separate
real mosquitto brokers (broker.py) b1 and b2, and real `sprig run` processes (`--rules
off`): a gateway whose sync node's uri is "b1,b2" and an upstream started with
`--sync-broker b1,b2`.

It proves:
  1. a malformed list is refused at start naming the element and the rule: `sprig run
     --serve-sync --sync-broker "mqtt://...,http://b"` exits 2 with `element 2 "http://b"
     must start with mqtt:// or mqtts://`, an empty element likewise; a sync node whose uri
     has a bad element is in state error with that sentence;
  2. both sides connect to b1 (the sync node's broker point is b1, protocol 5) and
     converge: the gateway's GET /v1/status hash equals the upstream's GET /v1/nodes/{its
     root} hash, and the sync node is insync;
  3. b1 is stopped by pid: both move to b2 (the broker point says b2, the upstream logs
     that it connected to b2), and points written on the gateway right after the stop
     (while the link moves) reach the upstream: they converge again;
  4. b1 is started again and b2 stopped: both move back to b1 (the list wraps around)
     and converge again with new points;
  5. the link never spins: over the whole run, the gateway and the upstream log at most a
     few connection attempts each.
The time of each move (stop of the broker -> converged on the other, new points included)
is printed. Every daemon and broker is stopped by pid; every wait is bounded.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from broker import Broker  # noqa: E402
from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402

PERIOD = 2          # s between two probes
MOVE_MAX = 30.0     # s for a move to another broker to converge
LINK = "link"
DEVICE = "gw-failover"


def link(gw):
    pts = gw.points(LINK)
    return {k: (pts[k]["text"] if k in ("state", "error", "broker", "protocol")
                else pts[k]["value"]) if k in pts else None
            for k in ("state", "error", "broker", "protocol", "syncCount")}


def equal(gw, up, root):
    g1 = gw.status()["hash"]
    n = up.node(root)
    g2 = gw.status()["hash"]
    return n is not None and n["hash"] in (g1, g2)


def has_value(d, nid, ptype, value):
    n = d.node(nid)
    return n is not None and any(p["type"] == ptype and p["key"] == "0" and not p["tombstone"]
                                 and p["value"] == value for p in n["points"])


def set_point(d, nid, ptype, value):
    d.expect(200, "POST", "/v1/nodes/%s/points" % nid, [{"type": ptype, "value": value}])


def converged(what, gw, up, root, broker, t0, marks=()):
    """Waits until the link uses broker, the hashes are equal, every (node, type, value) of
    marks is on the upstream and the sync node is insync; returns the seconds since t0."""
    wait_until(lambda: "%s: the sync node's broker becomes %s (%r)" % (what, broker, link(gw)),
               lambda: link(gw)["broker"] == broker and link(gw)["protocol"] == "5",
               MOVE_MAX, 0.02)
    for nid, ptype, value in marks:
        wait_until(lambda: "%s: %s %s = %r reaches the upstream (%r)"
                   % (what, nid, ptype, value, link(gw)),
                   lambda: has_value(up, nid, ptype, value), MOVE_MAX, 0.02)
    wait_until(lambda: "%s: the gateway's root hash equals the upstream's copy (%r)"
               % (what, link(gw)), lambda: equal(gw, up, root), MOVE_MAX, 0.02)
    wait_until(lambda: "%s: the sync node reaches insync (%r)" % (what, link(gw)),
               lambda: link(gw)["state"] == "insync", MOVE_MAX, 0.02)
    took = time.monotonic() - t0
    check(equal(gw, up, root), "%s: the hashes differ again once insync" % what)
    return took


def logged(d, pattern, what, timeout=10):
    return wait_until(lambda: "%s: %s logs /%s/ (log tail: %s)"
                      % (what, d.name, pattern, d.proc.stderr_tail(8)),
                      lambda: re.search(pattern, d.proc.stderr()), timeout, 0.05)


def refused_lists(h, gw, root):
    for bad, sentence in (
            ("mqtt://127.0.0.1:1,http://b",
             'sync: uri "mqtt://127.0.0.1:1,http://b" element 2 "http://b" must start with '
             'mqtt:// or mqtts://'),
            ("mqtt://127.0.0.1:1,,mqtt://127.0.0.1:2",
             'sync: uri "mqtt://127.0.0.1:1,,mqtt://127.0.0.1:2" element 2 is empty')):
        r = h.run("run", "--db", h.path("bad.db"), "--listen", "off", "--rules", "off",
                  "--serve-sync", "--sync-broker", bad, timeout=20)
        check(r.returncode == 2 and sentence in r.stderr,
              "sprig run --sync-broker %r: exit %d, stderr %r; expected exit 2 and %r"
              % (bad, r.returncode, r.stderr, sentence))
        print("1. --sync-broker %r refused: %s" % (bad, r.stderr.strip().splitlines()[-1]))
    bad = "mqtt://127.0.0.1:1, mqtts://:8883"
    gw.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root, "id": "bad-link",
                                         "points": [{"type": "uri", "text": bad}]})
    want = 'element 2 "mqtts://:8883" has no host'
    wait_until(lambda: "1. the sync node bad-link is in state error naming element 2 (%r)"
               % gw.points("bad-link").get("error"),
               lambda: gw.points("bad-link").get("state", {}).get("text") == "error" and
               want in gw.points("bad-link").get("error", {}).get("text", ""), 10, 0.05)
    print("1. sync node uri %r: state error, %s" % (bad, gw.points("bad-link")["error"]["text"]))
    gw.expect(200, "DELETE", "/v1/nodes/bad-link?parent=" + root)


def test():
    with Harness("sync-failover") as h:
        b1 = Broker(h)
        b2 = Broker(h)
        uris = "%s,%s" % (b1.uri, b2.uri)
        up = Daemon(h, h.path("up.db"), "--rules", "off", "--serve-sync", "--sync-broker", uris,
                    name="upstream")
        gw = Daemon(h, h.path("gw.db"), "--rules", "off", name="gateway")
        root = gw.status()["root"]
        refused_lists(h, gw, root)

        for i in range(5):
            gw.expect(201, "POST", "/v1/nodes", {
                "type": "group", "parent": root, "id": "tank-%d" % i,
                "points": [{"type": "level", "value": i}]})
        t0 = time.monotonic()
        gw.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root, "id": LINK, "points": [
            {"type": "uri", "text": uris}, {"type": "period", "value": PERIOD},
            {"type": "deviceId", "text": DEVICE}]})
        took = converged("2. start", gw, up, root, b1.uri, t0)
        logged(up, re.escape("connected to %s (MQTT 5)" % b1.uri), "2. start")
        st = {s["id"]: s for s in gw.status()["sync"]}[LINK]
        check(st.get("broker") == b1.uri and st.get("protocol") == "5" and st.get("uri") == uris,
              "2. /v1/status sync entry %r: expected uri %s, broker %s, protocol 5"
              % (st, uris, b1.uri))
        out = gw.cli("sync", "status").stdout
        check(re.search(r"^  broker\s+%s$" % re.escape(b1.uri), out, re.M) and
              re.search(r"^  protocol\s+5$", out, re.M),
              "2. sprig sync status does not show broker %s and protocol 5:\n%s" % (b1.uri, out))
        print("2. both on b1, converged in %.2f s" % took)

        # 3. b1 goes away: both move to b2; points written meanwhile arrive.
        up_mark = len(up.proc.stderr())
        t0 = time.monotonic()
        check(b1.stop() == 0, "3. mosquitto b1 did not exit 0 on SIGTERM")
        set_point(gw, "tank-1", "level", 101)
        set_point(gw, "tank-2", "level", 102)
        took = converged("3. b1 stopped", gw, up, root, b2.uri, t0,
                         [("tank-1", "level", 101), ("tank-2", "level", 102)])
        check(re.search(re.escape("connected to %s (MQTT 5)" % b2.uri),
                        up.proc.stderr()[up_mark:]),
              "3. the upstream did not log that it connected to b2:\n%s"
              % up.proc.stderr()[up_mark:][-1500:])
        set_point(gw, "tank-3", "level", 103)
        converged("3. a live point on b2", gw, up, root, b2.uri, time.monotonic(),
                  [("tank-3", "level", 103)])
        move1 = took
        print("3. b1 stopped: both moved to b2 and converged (2 points written during the "
              "move) in %.2f s" % took)

        # 4. b1 back, b2 gone: both move back to b1 (the list wraps around).
        b1.start()
        up_mark = len(up.proc.stderr())
        t0 = time.monotonic()
        check(b2.stop() == 0, "4. mosquitto b2 did not exit 0 on SIGTERM")
        set_point(gw, "tank-4", "level", 104)
        set_point(up, "tank-0", "level", 200)   # a change made upstream during the move
        took = converged("4. b2 stopped", gw, up, root, b1.uri, t0, [("tank-4", "level", 104)])
        wait_until("4. the upstream's change of tank-0 reaches the gateway",
                   lambda: has_value(gw, "tank-0", "level", 200), MOVE_MAX, 0.05)
        check(equal(gw, up, root), "4. the hashes differ after the upstream's change arrived")
        check(re.search(re.escape("connected to %s (MQTT 5)" % b1.uri),
                        up.proc.stderr()[up_mark:]),
              "4. the upstream did not log that it connected to b1 again")
        print("4. b1 back, b2 stopped: both moved back to b1 and converged in %.2f s" % took)

        # 5. No tight loop: a handful of connections each, over the whole run.
        for d in (gw, up):
            n = len(re.findall(r"sync \S+: connected to ", d.proc.stderr()))
            check(n <= 6, "5. %s connected %d times, expected a few:\n%s"
                  % (d.name, n, d.proc.stderr_tail(20)))
        print("moves: b1 -> b2 %.2f s, b2 -> b1 %.2f s (stop of the broker -> converged, "
              "new points included)" % (move1, took))
        gw.stop()
        up.stop()
        for db in ("gw.db", "up.db"):
            h.verify(h.path(db), expect=0)


if __name__ == "__main__":
    main(test)
