"""Schemas: a schema folder edited while `sprig run` is live. A valid edit applies within
a second (the new point type is accepted, a narrowed range refuses what it allowed); a
broken edit is reported in the log with file and line and the previous schema stays in
force; fixing it applies again. Writes that break the schema are refused with a sentence
naming node, point, rule and value, and change nothing."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main  # noqa: E402
from test_api import Daemon  # noqa: E402

V1 = """nodetype "pump" {
  description = "A pump under test",
  points = {
    speed = { kind = "number", min = 0, max = 3000, unit = "rpm" },
    mode = { kind = "enum", values = { "auto", "manual" }, default = "auto" },
  },
}
"""

V2 = V1.replace('unit = "rpm" },', 'unit = "rpm" },\n    flow = { kind = "number", min = 0 },')
V3_NARROW = V2.replace("max = 3000", "max = 2000")
BROKEN = V2.replace("kind = \"number\", min = 0 }", "kind = \"nombre\", min = 0 }")


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def wait_for(what, fn, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return
        time.sleep(0.05)
    check(False, "within %.0f s: %s" % (timeout, what))


def points_of(d, node):
    return {(p["type"], p["key"]): p for p in d.expect(200, "GET", "/v1/nodes/" + node)["points"]}


def test():
    with Harness("schema-reload") as h:
        sdir = h.path("schema")
        os.mkdir(sdir)
        sfile = os.path.join(sdir, "pump.lua")
        write(sfile, V1)
        d = Daemon(h, h.path("s.db"), "--schema", sdir, name="schema")
        root = d.status()["root"]
        t = d.expect(200, "GET", "/v1/schema/pump")
        check(sorted(p["name"] for p in t["points"]) == ["mode", "speed"],
              "GET /v1/schema/pump: %r" % t)
        d.expect(201, "POST", "/v1/nodes", {"type": "pump", "parent": root, "id": "p1",
                                             "points": [{"type": "speed", "value": 1500}]})
        pts = points_of(d, "p1")
        check(pts[("mode", "0")]["text"] == "auto", "the default mode was not filled in: %r" % pts)

        # Refusals: each names node, point, rule and value; nothing changes.
        before = d.status()["hash"]
        for body, want in (
                ([{"type": "speed", "value": 4000}], 'node p1: point "speed" = 4000 is above max 3000 (pump)'),
                ([{"type": "speed", "value": -1}], 'node p1: point "speed" = -1 is below min 0 (pump)'),
                ([{"type": "mode", "text": "turbo"}], 'node p1: point "mode" = "turbo" is not one of auto, manual (pump)'),
                ([{"type": "flow", "value": 1}], 'node p1: point "flow" is not declared by type pump'),
                ([{"type": "speed", "value": 10}, {"type": "flow", "value": 1}], 'point "flow" is not declared')):
            o = d.expect(400, "POST", "/v1/nodes/p1/points", body)
            check(want in o["error"], "expected %r in %r" % (want, o["error"]))
        check(d.status()["hash"] == before, "a refused write changed the root hash")
        check(points_of(d, "p1")[("speed", "0")]["value"] == 1500, "speed changed by a refused batch")

        # A valid edit applies: flow is declared now.
        write(sfile, V2)
        wait_for("the edit declaring flow applies",
                 lambda: any(p["name"] == "flow" for p in d.get("/v1/schema/pump").json()["points"]))
        d.expect(200, "POST", "/v1/nodes/p1/points", [{"type": "flow", "value": 12.5}])

        # A broken edit is reported with file and line; the previous schema stays.
        write(sfile, BROKEN)
        wait_for("the broken edit is reported in the log",
                 lambda: "pump.lua:" in d.proc.stderr() and "nombre" in d.proc.stderr()
                 and "previous schema stays in force" in d.proc.stderr())
        err = d.proc.stderr()
        check("previous schema stays in force" in err, "no word that the old schema stays: %s" % err[-800:])
        d.expect(200, "POST", "/v1/nodes/p1/points", [{"type": "flow", "value": 13}])
        o = d.expect(400, "POST", "/v1/nodes/p1/points", [{"type": "speed", "value": 4000}])
        check("above max 3000" in o["error"], "the old schema is not in force: %r" % o)

        # Fixing it (narrower range) applies.
        write(sfile, V3_NARROW)
        wait_for("the narrowed range applies",
                 lambda: d.post("/v1/nodes/p1/points", [{"type": "speed", "value": 2500}]).status == 400)
        d.expect(200, "POST", "/v1/nodes/p1/points", [{"type": "speed", "value": 1999}])

        d.stop()
        h.verify(d.db, expect=0)


if __name__ == "__main__":
    main(test)
