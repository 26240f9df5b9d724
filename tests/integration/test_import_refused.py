"""Acceptance (issue 14, item 9): a refused POST /v1/import changes nothing.

A daemon (no demo, so nothing else writes) gets a fixture tree of 14 nodes: groups, a
signalGenerator, a rule, a Modbus bus with its IOs. Then a series of imports, each a
document that is fine for its first nine or ten nodes and breaks one rule after them:
an edge closing a cycle, one id listed twice, a rule under a signalGenerator, a point
above the schema's max in the 10th node, a point the type does not declare, a driver's
point written by a person, an edge from or to a node that is nowhere, a node that exists
here with another type, a time that is not a date and one beyond the drift limit, a
malformed id, a missing required point, a modbusIo under a group, an over-long text.
For each:
  - the answer is the expected 4xx with {"error": sentence}, and the sentence names the
    offending item (nodes[9], edges[9].up, ...), the rule broken and the value;
  - GET /v1/nodes (every node, deleted ones too, with points and hashes), GET /v1/export
    and the root hash are exactly as before, and no event arrives on /v1/events;
  - `sprig import FILE` of the same document exits non-zero and prints the same sentence.
Then the same nine nodes without the fault are accepted (so it was the fault that was
refused), the daemon stops with SIGTERM, `sprig store verify` passes, and a restarted
daemon shows the tree as it was.
"""
import json
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import Harness, check, main
from test_api import Daemon, Sse

NINE = [{"id": "a%d" % i, "type": "group"} for i in range(9)]
NINE[0]["points"] = [{"type": "description", "text": "first of nine"}]
CHAIN = [{"up": "R", "down": "a0"}] + [{"up": "a%d" % i, "down": "a%d" % (i + 1)}
                                       for i in range(8)]


def doc(nodes=(), edges=()):
    return {"root": "R", "nodes": NINE + list(nodes), "edges": CHAIN + list(edges)}


SG = {"id": "s9", "type": "signalGenerator"}

# (what, status, document, words the error must contain: item, rule, value)
REFUSALS = [
    ("edges closing a cycle among new nodes", 409,
     doc(edges=[{"up": "a8", "down": "a0"}]), ["edges[9]", "cycle", "a8 -> a0"]),
    ("an edge making an existing node its own ancestor", 409,
     doc(edges=[{"up": "g2", "down": "g1", "points": [{"type": "tombstone", "value": 0}]}]),
     ["edges[9]", "cycle", "g2 -> g1"]),
    ("one id listed twice with two types", 409,
     doc(nodes=[{"id": "a4", "type": "signalGenerator"}]),
     ["nodes[9]", "listed twice", "a4"]),
    ("a rule under a signalGenerator", 400,
     doc(nodes=[{"id": "ru", "type": "rule", "points": [{"type": "script", "text": "--"}]}],
         edges=[{"up": "sg1", "down": "ru"}]),
     ["edges[9]", "signalGenerator", "ru"]),
    ("a point above the schema's max in the 10th node", 400,
     doc(nodes=[dict(SG, points=[{"type": "amplitude", "value": 2},
                                 {"type": "sampleRate", "value": 5000}])],
         edges=[{"up": "R", "down": "s9"}]),
     ["nodes[9].points", "sampleRate", "5000", "max 1000"]),
    ("a point the type does not declare", 400,
     doc(nodes=[dict(SG, points=[{"type": "bogus", "value": 1}])],
         edges=[{"up": "R", "down": "s9"}]),
     ["nodes[9].points", "bogus", "not declared"]),
    ("a driver's point written by a person", 400,
     doc(nodes=[{"id": "io1", "type": "modbusIo", "points": [{"type": "value", "value": 3}]}]),
     ["nodes[9].points", "\"value\"", "driver"]),
    ("an edge from a node that is nowhere", 404,
     doc(edges=[{"up": "ghost", "down": "a8"}]),
     ["edges[9].up", "neither in the document nor in this tree", "ghost"]),
    ("an edge to a node that is nowhere", 404,
     doc(edges=[{"up": "a8", "down": "nowhere"}]), ["edges[9].down", "neither", "nowhere"]),
    ("a node that exists here with another type", 409,
     doc(nodes=[{"id": "g2", "type": "signalGenerator"}]),
     ["nodes[9]", "exists here with type group", "signalGenerator"]),
    ("a time that is not a date", 400,
     doc(nodes=[{"id": "b9", "type": "group",
                 "points": [{"type": "description", "text": "x",
                             "time": "2026-02-30T00:00:00Z"}]}]),
     ["nodes[9].points[0]", "does not exist", "2026-02-30T00:00:00Z"]),
    ("a time beyond the drift limit", 400,
     doc(nodes=[{"id": "b9", "type": "group",
                 "points": [{"type": "description", "text": "x",
                             "time": "2200-01-01T00:00:00Z"}]}],
         edges=[{"up": "R", "down": "b9"}]),
     ["nodes[9].points", "drift", "description"]),
    ("a malformed id", 400, doc(nodes=[{"id": "bad id!", "type": "group"}]),
     ["nodes[9].id", "1-64 bytes", "bad id!"]),
    ("a new rule without its required script", 400,
     doc(nodes=[{"id": "ru", "type": "rule"}], edges=[{"up": "R", "down": "ru"}]),
     ["nodes[9]", "required", "script"]),
    ("a modbusIo under a group", 400,
     doc(nodes=[{"id": "io9", "type": "modbusIo",
                 "points": [{"type": "id", "value": 1}, {"type": "address", "value": 1},
                            {"type": "modbusIoType", "text": "coil"}]}],
         edges=[{"up": "a8", "down": "io9"}]),
     ["edges[9]", "modbus", "group"]),
    ("a text over the size limit", 400,
     doc(nodes=[{"id": "b9", "type": "group",
                 "points": [{"type": "description", "text": "y" * 65537}]}]),
     ["nodes[9].points", "over the limit", "65537 bytes"]),
]


def fixture(d, root):
    """14 nodes: root, g1 { g2, m1 { io1..io3 }, r1 }, sg1, and more groups."""
    d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": root, "id": "g1"})
    d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": "g1", "id": "g2"})
    d.expect(201, "POST", "/v1/nodes", {"type": "modbus", "parent": "g1", "id": "m1",
                                        "points": [{"type": "protocol", "text": "TCP"},
                                                   {"type": "uri", "text": "127.0.0.1:1"},
                                                   {"type": "disabled", "value": 1}]})
    for i in range(1, 4):
        d.expect(201, "POST", "/v1/nodes",
                 {"type": "modbusIo", "parent": "m1", "id": "io%d" % i,
                  "points": [{"type": "id", "value": 1}, {"type": "address", "value": i},
                             {"type": "modbusIoType", "text": "holdingRegister"},
                             {"type": "disabled", "value": 1}]})
    d.expect(201, "POST", "/v1/nodes", {"type": "rule", "parent": "g1", "id": "r1",
                                        "points": [{"type": "script", "text": "-- idle"},
                                                   {"type": "disabled", "value": 1}]})
    d.expect(201, "POST", "/v1/nodes", {"type": "signalGenerator", "parent": root, "id": "sg1",
                                        "points": [{"type": "disabled", "value": 1}]})
    for i in range(5):
        d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": "g2", "id": "h%d" % i})
    check(d.status()["nodes"] == 14, "the fixture has %d nodes, not 14" % d.status()["nodes"])


def state(d):
    """Everything a refused import must leave alone, as the API shows it."""
    nodes = d.expect(200, "GET", "/v1/nodes?deleted=1")
    exp = d.expect(200, "GET", "/v1/export")
    st = d.status()
    return {"nodes": nodes, "export": exp, "hash": st["hash"], "count": st["nodes"],
            "points": st["points"]}


def diff(a, b):
    for k in a:
        if a[k] != b[k]:
            return "%s: %.300r -> %.300r" % (k, a[k], b[k])
    return None


def test():
    with Harness("import_refused") as h:
        db = h.path("refused.db")
        d = Daemon(h, db, name="refused")
        root = d.status()["root"]
        fixture(d, root)
        before = state(d)
        sse = Sse(d.port, "/v1/events")
        check(sse.status == 200, "GET /v1/events: %r" % sse.status)
        for what, status, body, words in REFUSALS:
            o = d.expect(status, "POST", "/v1/import", body, what=what)
            for w in words:
                check(w in o["error"], "%s: the error does not name %r: %r"
                      % (what, w, o["error"]))
            now = state(d)
            dd = diff(before, now)
            check(dd is None, "%s: answered %d (%s) but the tree changed: %s"
                  % (what, status, o["error"], dd))
            # The CLI sends the same document and prints the same sentence.
            path = h.path("doc.json")
            with open(path, "w") as f:
                json.dump(body, f)
            r = d.cli("import", path, code=1)
            digits = lambda s: re.sub(r"[0-9]+", "N", s)  # the drift message quotes the clock
            check(digits(o["error"]) in digits(r.stderr) and ("HTTP %d" % status) in r.stderr,
                  "%s: sprig import printed %r, the API said %r" % (what, r.stderr, o["error"]))
            check(diff(before, state(d)) is None, "%s: sprig import changed the tree" % what)
            print("refused (%d): %s: %s" % (status, what, o["error"][:150]))
        ev = sse.next(0.5)
        check(ev is None, "an event was published during refused imports: %r" % (ev,))
        check(before["count"] == 14, "the tree has %d nodes" % before["count"])

        # Without its fault the document is accepted: it was the fault that was refused.
        o = d.expect(200, "POST", "/v1/import", doc())
        check(o["nodes"] == 9, "import answer %r" % o)
        ev = sse.next(5)
        check(ev is not None, "no event for the accepted import")
        sse.close()
        after = state(d)
        check(after["count"] == 23 and after["hash"] != before["hash"],
              "after the accepted import: %d nodes, hash %s" % (after["count"], after["hash"]))
        d.stop()
        h.verify(db, expect=0)
        d2 = Daemon(h, db, name="restarted")
        again = state(d2)

        def canon(nodes):  # a reload lists points and parents in the store's order
            pk = lambda p: (p["type"], p["key"])
            return sorted((n["id"], n["type"], n["hash"], sorted(n["parents"]),
                           sorted(n["points"], key=pk), sorted(n["edgePoints"], key=pk))
                          for n in nodes)

        check(canon(again["nodes"]) == canon(after["nodes"]) and again["hash"] == after["hash"],
              "the restarted daemon shows another tree: %s" % diff(after, again))
        d2.stop()


if __name__ == "__main__":
    main(test)
