"""Node types no schema declares (DESIGN.md section 6), through the public interfaces.

A daemon with the shipped schema and tests/schema_test (which declares `pump` and `sensor`):
  - POST /v1/nodes of type "pumpp" is 400 `node p1: type "pumpp" is not declared (did you
    mean pump?)`, "nosuchtype" is 400 with no suggestion; neither node exists after; a
    `pump` is created as before;
  - `sprig node add --type pumpp` exits 1 with the same sentence on stderr;
  - POST /v1/import (and `sprig import`) of a document with one node of type "sensr" among
    declared ones is 400 naming that item and `sensor`, and changes nothing (same root
    hash, same node count);
  - a rule that notifies still creates its `notification` node (a shipped type).
Then a database made under a schema that declared `oldMeter`, opened without it: the daemon
says once that 1 node is of an undeclared type; the node is listed, read, written (200) and
exported; a new `oldMeter` is refused; `sprig store verify` passes.
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import SCHEMA_ARGS, TEST_SCHEMA, Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402

RULE = """-- notifies when pump p1 runs too fast
on({ node = "p1", point = "speed" }, function(ev)
  if ev.value > 2000 then
    notify(string.format("p1 too fast: %d rpm", ev.value), { severity = "alarm" })
  end
end)
"""


def refused(d, method, path, body, want, what):
    o = d.expect(400, method, path, body, what=what)
    check(o["error"] == want, "%s: error %r, expected %r" % (what, o["error"], want))


def test_refusals(h):
    rules = h.path("rules")
    os.mkdir(rules)
    with open(os.path.join(rules, "fast.lua"), "w") as f:
        f.write(RULE)
    d = Daemon(h, h.path("types.db"), *SCHEMA_ARGS, "--rules", rules, name="types")
    root = d.status()["root"]

    # The API.
    refused(d, "POST", "/v1/nodes", {"type": "pumpp", "parent": root, "id": "p1"},
            'node p1: type "pumpp" is not declared (did you mean pump?)', "a typo in a type")
    refused(d, "POST", "/v1/nodes", {"type": "nosuchtype", "parent": root, "id": "n1"},
            'node n1: type "nosuchtype" is not declared', "a type nothing is close to")
    for nid in ("p1", "n1"):
        d.expect(404, "GET", "/v1/nodes/" + nid, what="a refused create left %s" % nid)
    d.expect(201, "POST", "/v1/nodes", {"type": "pump", "parent": root, "id": "p1",
                                        "points": [{"type": "speed", "value": 1500}]})

    # The CLI.
    r = d.cli("node", "add", "--type", "pumpp", "--parent", root, "--id", "p2", code=1)
    check('node p2: type "pumpp" is not declared (did you mean pump?)' in r.stderr,
          "sprig node add --type pumpp: stderr %r" % r.stderr)
    d.expect(404, "GET", "/v1/nodes/p2", what="sprig node add --type pumpp left p2")
    d.cli("node", "add", "--type", "sensor", "--parent", "p1", "--id", "s1")

    # Import: one undeclared type anywhere refuses the whole document.
    before = d.status()
    doc = {"root": root,
           "nodes": [{"id": "i1", "type": "group"}, {"id": "i2", "type": "sensr"},
                     {"id": "i3", "type": "pump"}],
           "edges": [{"up": root, "down": "i1"}, {"up": "i1", "down": "i2"},
                     {"up": "i1", "down": "i3"}]}
    refused(d, "POST", "/v1/import", doc,
            'nodes[1]: node i2: type "sensr" is not declared (did you mean sensor?)',
            "an import with a typo in one type")
    path = h.path("doc.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    r = d.cli("import", path, code=1)
    check('type "sensr" is not declared (did you mean sensor?)' in r.stderr,
          "sprig import of that document: stderr %r" % r.stderr)
    after = d.status()
    check(after["hash"] == before["hash"] and after["nodes"] == before["nodes"],
          "a refused import changed the tree: %r -> %r" % (before, after))
    for nid in ("i1", "i2", "i3"):
        d.expect(404, "GET", "/v1/nodes/" + nid, what="a refused import left %s" % nid)
    doc["nodes"][1]["type"] = "sensor"
    d.expect(200, "POST", "/v1/import", doc, what="the import with its type fixed")

    # A rule that notifies: its notification node is created.
    d.expect(200, "POST", "/v1/nodes/p1/points", [{"type": "speed", "value": 2500}])

    def notified():
        for n in d.expect(200, "GET", "/v1/nodes?type=notification"):
            pts = d.expect(200, "GET", "/v1/nodes/" + n["id"])["points"]
            if any(p["type"] == "message" and p["text"] == "p1 too fast: 2500 rpm" for p in pts):
                return True
        return False

    wait_until("the rule's notification", notified, 10)
    d.stop()


def test_old_database(h):
    old = h.path("old-schema")
    os.mkdir(old)
    with open(os.path.join(old, "meter.lua"), "w") as f:
        f.write('nodetype "oldMeter" { open = true }\n')
    db = h.path("old.db")
    d = Daemon(h, db, "--schema", old, name="old-schema")
    root = d.status()["root"]
    d.expect(201, "POST", "/v1/nodes", {"type": "oldMeter", "parent": root, "id": "m1",
                                        "points": [{"type": "reading", "value": 1}]})
    d.stop()

    # The same database under a schema without oldMeter.
    d = Daemon(h, db, *SCHEMA_ARGS, name="new-schema")
    warn = "schema: 1 node is of a type no schema declares (oldMeter): kept"
    wait_until("the warning about m1", lambda: warn in d.proc.stderr(), 5)
    check(d.proc.stderr().count(warn) == 1, "the warning is not said once:\n%s"
          % d.proc.stderr())
    n = d.expect(200, "GET", "/v1/nodes/m1")
    check(n["type"] == "oldMeter" and n["parent"] == root, "m1 after the reopen: %r" % n)
    check("m1" in [x["id"] for x in d.expect(200, "GET", "/v1/nodes")], "m1 is not listed")
    o = d.expect(200, "POST", "/v1/nodes/m1/points", [{"type": "reading", "value": 2},
                                                     {"type": "note", "text": "kept"}])
    check(o == {"accepted": 2, "stale": 0}, "a write to m1: %r" % o)
    check(d.points("m1")["reading"]["value"] == 2, "m1's reading: %r" % d.points("m1"))
    d.expect(201, "POST", "/v1/nodes", {"type": "sensor", "parent": "m1", "id": "under-m1"})
    refused(d, "POST", "/v1/nodes", {"type": "oldMeter", "parent": root, "id": "m2"},
            'node m2: type "oldMeter" is not declared', "a new node of the old type")
    exp = d.expect(200, "GET", "/v1/export")
    check({"id": "m1", "type": "oldMeter"}.items() <=
          next(x for x in exp["nodes"] if x["id"] == "m1").items(), "m1 is not exported")
    d.stop()
    r = h.verify(db)
    check(r.returncode == 0, "sprig store verify after: %d\n%s%s" % (r.returncode, r.stdout,
                                                                       r.stderr))


def test():
    check(os.path.isdir(TEST_SCHEMA), "no test schema folder %s" % TEST_SCHEMA)
    with Harness("node-types") as h:
        t0 = time.monotonic()
        test_refusals(h)
        print("refusals through the API, the CLI and import; a rule notifies: ok (%.1f s)"
              % (time.monotonic() - t0))
        t0 = time.monotonic()
        test_old_database(h)
        print("a node of a type no longer declared is kept and written: ok (%.1f s)"
              % (time.monotonic() - t0))


if __name__ == "__main__":
    main(test)
