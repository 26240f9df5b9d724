"""A sync node's deviceId (DESIGN.md section 5: the device's root keeps its id upstream,
whatever device id names its topics), with a real mosquitto (broker.py) that checks
passwords and the ACL (`pattern readwrite sprig/%c/#`: a client reads and writes only the
topics of its own client id), and real `sprig run` processes (`--rules off`).

It proves:
  1. a gateway whose sync node has deviceId "site-a" (its root id is a UUID) syncs: the
     upstream holds its tree under its root id (no node "site-a" there), the hashes are
     equal, the sync node reaches insync, and its history reaches the upstream
     (histAcked, and the sample rows in the upstream's store);
  2. the deviceId of that synced gateway changes to "site-b": the upstream refuses the
     root under the new id (it cannot tell a renamed gateway from a second one) and says
     so in its log and, through the answer to the probe, on the gateway's sync node
     (state error, the reason naming site-a and the command that moves it); a point set
     on the gateway meanwhile does not reach the upstream, and no node "site-b" is made;
     once a person runs `sprig point set ROOT syncDevice site-b --text` on the upstream,
     the gateway syncs again (the point arrives, hashes equal, insync, history arrives),
     and the old id is refused for that root from then on (a pts published as client
     site-a, naming the root, changes nothing); after a restart of the upstream on the
     same store the binding holds (site-b syncs, site-a is refused);
  3. two gateways claim one root (a cloned store, as when one SD card image goes on two
     boxes), the clone under deviceId "site-c": the upstream refuses the clone with a
     clear error (its log, and the clone's sync node: state error naming site-b); the
     clone's changes never reach the upstream, while the first gateway keeps syncing;
  4. a device id naming as its root a device-typed node inside the gateway's tree, or the
     upstream's own root, is refused and nothing is made or moved.
Every daemon is stopped by pid (SIGTERM, exit 0) and `sprig store verify` passes on every
store; every wait is bounded.
"""
import json
import os
import re
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from broker import UPSTREAM_USER, Broker  # noqa: E402
from sprigtest import Harness, check, db_query, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402

PERIOD = 2           # s between two probes
CONVERGE_MAX = 30.0  # s
LINK = "link"


def node(d, nid):
    return d.node(nid)


def pval(d, nid, ptype):
    n = node(d, nid)
    for p in (n or {"points": []})["points"]:
        if p["type"] == ptype and p["key"] == "0" and not p["tombstone"]:
            return p["value"]
    return None


def link_state(d):
    pts = d.points(LINK)
    return {k: (pts[k]["text"] if k in ("state", "error") else pts[k]["value"])
            if k in pts else None for k in ("state", "error", "syncCount", "histAcked")}


def equal(gw, up, root):
    g1 = gw.status()["hash"]
    n = node(up, root)
    g2 = gw.status()["hash"]
    return n is not None and n["hash"] in (g1, g2)


def wait_synced(what, gw, up, root):
    t0 = time.monotonic()
    wait_until("%s: the gateway's root hash equals the upstream's copy of %s (sync node %r)"
               % (what, root, link_state(gw)), lambda: equal(gw, up, root), CONVERGE_MAX, 0.05)
    wait_until("%s: the sync node reaches insync (%r)" % (what, link_state(gw)),
               lambda: link_state(gw)["state"] == "insync", CONVERGE_MAX, 0.1)
    print("%s: hashes equal, insync, after %.2f s" % (what, time.monotonic() - t0))


def set_point(d, nid, ptype, value=None, text=None):
    p = {"type": ptype}
    if value is not None:
        p["value"] = value
    if text is not None:
        p["text"] = text
    d.expect(200, "POST", "/v1/nodes/%s/points" % nid, [p])


def history_arrived(what, gw, up, nid, ptype, value):
    """The gateway's history sample (nid, ptype) = value is in the upstream's store once
    the upstream acknowledged the gateway's history up to it."""
    q = ("SELECT h.id FROM history h JOIN series s ON s.id = h.series"
         " WHERE s.node = ? AND s.type = ? AND h.value = ?")
    rows = db_query(gw.db, q, (nid, ptype, value))
    check(len(rows) == 1, "%s: the gateway's history has %d rows of %s %s = %r"
          % (what, len(rows), nid, ptype, value))
    wait_until("%s: the upstream acknowledges the gateway's history up to row %d (%r)"
               % (what, rows[0][0], link_state(gw)),
               lambda: (link_state(gw)["histAcked"] or 0) >= rows[0][0], CONVERGE_MAX, 0.1)
    got = db_query(up.db, q, (nid, ptype, value))
    check(len(got) == 1, "%s: the upstream's history has %d rows of %s %s = %r, expected 1"
          % (what, len(got), nid, ptype, value))
    print("%s: the history sample %s %s = %r is on the upstream once" % (what, nid, ptype, value))


def logged(up, mark, pattern, what):
    line = wait_until("%s: the upstream logs /%s/ (log since: %r)"
                      % (what, pattern, up.proc.stderr()[mark:][-1500:]),
                      lambda: next((ln for ln in up.proc.stderr()[mark:].splitlines()
                                    if re.search(pattern, ln)), None), 15, 0.1)
    print("%s: upstream log: %s" % (what, line))
    return line


def start_up(h, broker, db):
    return Daemon(h, db, "--rules", "off", "--serve-sync", "--sync-broker", broker.uri,
                  "--sync-user", UPSTREAM_USER, "--sync-password-file",
                  broker.password_file(UPSTREAM_USER), name="upstream")


def gateway(h, name, db):
    return Daemon(h, db, "--rules", "off", name=name)


def test():
    with Harness("sync-devid") as h:
        broker = Broker(h, password=True, acl=True)
        pw_file = h.path("gateway.password")
        with open(pw_file, "w") as f:
            f.write(broker.users["gateway"])
        up = start_up(h, broker, h.path("up.db"))
        up_root = up.status()["root"]

        # 1. deviceId site-a.
        gw = gateway(h, "gateway", h.path("gw.db"))
        root = gw.status()["root"]
        check(root not in ("site-a", "site-b", "site-c"), "the root id is %s" % root)
        gw.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": root, "id": "tank",
                                             "points": [{"type": "value", "value": 1}]})
        gw.expect(201, "POST", "/v1/nodes", {"type": "device", "parent": root, "id": "plc-1"})
        gw.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root, "id": LINK, "points": [
            {"type": "uri", "text": broker.uri}, {"type": "period", "value": PERIOD},
            {"type": "username", "text": "gateway"}, {"type": "passwordFile", "text": pw_file},
            {"type": "deviceId", "text": "site-a"}]})
        wait_synced("1. deviceId site-a", gw, up, root)
        kids = [c["id"] for c in up.expect(200, "GET", "/v1/nodes/%s/children" % up_root)]
        check(root in kids and "site-a" not in kids,
              "1. the upstream's root's children are %r: expected the gateway's root %s, and "
              "no node named after the device id site-a" % (kids, root))
        check(pval(up, "tank", "value") == 1, "1. the upstream's tank: %r" % node(up, "tank"))
        set_point(gw, "tank", "value", 2)
        history_arrived("1.", gw, up, "tank", "value", 2)

        # 2. The deviceId changes to site-b: refused until a person moves the root.
        mark = len(up.proc.stderr())
        set_point(gw, LINK, "deviceId", text="site-b")
        line = logged(up, mark, r"device site-b refused: device site-b names root %s, which "
                      r"syncs here as device site-a" % re.escape(root), "2. site-b")
        check("sprig point set %s syncDevice site-b --text" % root in line,
              "2. the refusal does not say how to move the root: %s" % line)
        wait_until("2. the gateway's sync node says the upstream refused it (%r)"
                   % link_state(gw),
                   lambda: link_state(gw)["state"] == "error" and
                   "refused this device" in (link_state(gw)["error"] or "") and
                   "site-a" in link_state(gw)["error"], 15, 0.1)
        print("2. the gateway's sync node: %r" % link_state(gw))
        set_point(gw, "tank", "value", 3)
        time.sleep(2 * PERIOD)
        check(pval(up, "tank", "value") == 2,
              "2. a point set under the refused device id reached the upstream: %r"
              % node(up, "tank"))
        kids = [c["id"] for c in up.expect(200, "GET", "/v1/nodes/%s/children" % up_root)]
        check("site-b" not in kids, "2. the upstream made a node site-b: %r" % kids)

        up.cli("point", "set", root, "syncDevice", "site-b", "--text")
        wait_synced("2. after syncDevice site-b on the upstream", gw, up, root)
        check(pval(up, "tank", "value") == 3, "2. the upstream's tank after the move: %r"
              % node(up, "tank"))
        set_point(gw, "tank", "value", 4)
        history_arrived("2.", gw, up, "tank", "value", 4)

        def old_id_refused(what, want):
            mark = len(up.proc.stderr())
            t = str(time.time_ns())
            broker.pub("sprig/site-a/up", json.dumps({
                "t": "pts", "seq": str(time.time_ns() * 2), "root": root, "items": [
                    {"n": "tank", "nt": "group", "p": {
                        "type": "value", "key": "0", "time": t, "value": 666, "text": "",
                        "tombstone": 0, "origin": ""}}]}),
                user="gateway", client_id="site-a")
            logged(up, mark, r"device site-a refused: device site-a names root %s, which syncs "
                   r"here as device site-b" % re.escape(root), what)
            time.sleep(0.5)
            check(pval(up, "tank", "value") == want, "%s: the old id's point landed: %r"
                  % (what, node(up, "tank")))

        old_id_refused("2. the old id site-a", 4)
        up.stop()
        up = start_up(h, broker, h.path("up.db"))
        set_point(gw, "tank", "value", 5)
        wait_until("2. after the upstream's restart a point set on the gateway arrives",
                   lambda: pval(up, "tank", "value") == 5, CONVERGE_MAX, 0.1)
        wait_synced("2. after the upstream's restart", gw, up, root)
        old_id_refused("2. the old id site-a after the upstream's restart", 5)

        # 3. A clone of the gateway's store (the same root) under deviceId site-c.
        set_point(gw, LINK, "disabled", 1)
        gw.stop()
        for ext in ("", "-wal", "-shm"):
            if os.path.exists(h.path("gw.db") + ext):
                shutil.copyfile(h.path("gw.db") + ext, h.path("clone.db") + ext)
        gw = gateway(h, "gateway", h.path("gw.db"))
        set_point(gw, LINK, "disabled", 0)
        wait_synced("3. the gateway again", gw, up, root)
        clone = gateway(h, "clone", h.path("clone.db"))
        check(clone.status()["root"] == root, "3. the clone's root is not %s" % root)
        set_point(clone, "tank", "value", 777)
        mark = len(up.proc.stderr())
        set_point(clone, LINK, "deviceId", text="site-c")
        set_point(clone, LINK, "disabled", 0)
        logged(up, mark, r"device site-c refused: device site-c names root %s, which syncs "
               r"here as device site-b" % re.escape(root), "3. the clone")
        wait_until("3. the clone's sync node says the upstream refused it (%r)"
                   % link_state(clone),
                   lambda: link_state(clone)["state"] == "error" and
                   "site-b" in (link_state(clone)["error"] or ""), 15, 0.1)
        print("3. the clone's sync node: %r" % link_state(clone))
        set_point(gw, "tank", "value", 6)
        wait_until("3. the first gateway's point arrives", lambda: pval(up, "tank", "value") == 6,
                   10, 0.05)
        time.sleep(2 * PERIOD)
        check(pval(up, "tank", "value") == 6, "3. the clone's point reached the upstream: %r"
              % node(up, "tank"))
        wait_synced("3. the first gateway beside its clone", gw, up, root)
        # 4. A device id naming as its root a node inside a gateway's tree (a device-typed
        # node there), or the upstream's own root: refused, nothing made.
        for claim, fault in (("plc-1", r": node plc-1 is inside the tree of %s here"
                              % re.escape(root)),
                             (up_root, r" is this upstream's own root")):
            mark = len(up.proc.stderr())
            broker.pub("sprig/site-x/up", json.dumps({
                "t": "probe", "seq": str(time.time_ns()), "root": claim, "acked": "0",
                "hash": "0000000000000000"}), user="gateway", client_id="site-x")
            logged(up, mark, r"device site-x refused: root %s%s" % (re.escape(claim), fault),
                   "4. site-x claiming %s" % claim)
        check(node(up, "plc-1")["parents"] == [root],
              "4. plc-1's parents on the upstream: %r" % node(up, "plc-1")["parents"])
        kids = [c["id"] for c in up.expect(200, "GET", "/v1/nodes/%s/children" % up_root)]
        check(sorted(kids) == [root], "3./4. the upstream's devices: %r" % kids)

        for d in (clone, gw, up):
            d.stop()
        broker.stop()
        for d in (gw, clone, up):
            h.verify(d.db, expect=0)


if __name__ == "__main__":
    main(test)
