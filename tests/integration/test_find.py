"""Find (like fleet indexing on a gateway): GET /v1/nodes?type=T&where=POINT OP VALUE and
`sprig node find --type T --where ...`, with every operator, numbers and texts, keys,
several conditions AND-ed, absent points, and the errors of a bad condition. Also the schema
as JSON (GET /v1/schema, /v1/schema/{type}) and `sprig schema ls|show|check`."""
import os
import subprocess
import sys
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main  # noqa: E402
from test_api import Daemon  # noqa: E402


def ids(lst):
    return sorted(n["id"] for n in lst)


def find(d, typ=None, *where, status=200):
    q = ([("type", typ)] if typ else []) + [("where", w) for w in where]
    return d.expect(status, "GET", "/v1/nodes?" + urllib.parse.urlencode(q))


def test():
    with Harness("find") as h:
        d = Daemon(h, h.path("f.db"), name="find")
        root = d.status()["root"]
        d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": root, "id": "plant"})
        pumps = {"p1": (1500, "auto", 3), "p2": (2500, "manual", 7), "p3": (900, "auto", 0)}
        for pid, (speed, mode, alarms) in pumps.items():
            d.expect(201, "POST", "/v1/nodes", {
                "type": "group", "parent": "plant", "id": pid,
                "points": [{"type": "speed", "value": speed}, {"type": "mode", "text": mode},
                           {"type": "alarm", "key": "dry", "value": alarms}]})
        d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": "plant", "id": "p4"})

        check(ids(find(d, "group", "speed > 1000")) == ["p1", "p2"], "speed > 1000")
        check(ids(find(d, None, "speed >= 1500")) == ["p1", "p2"], "speed >= 1500")
        check(ids(find(d, None, "speed < 1500")) == ["p3"], "speed < 1500")
        check(ids(find(d, None, "speed <= 1500")) == ["p1", "p3"], "speed <= 1500")
        check(ids(find(d, None, "speed = 900")) == ["p3"], "speed = 900")
        ne = ids(find(d, "group", "speed != 900"))
        check(ne == ["p1", "p2", "p4", "plant"], "speed != 900 (absent counts as different): %r"
              % ne)
        check(ids(find(d, None, "mode = auto")) == ["p1", "p3"], "mode = auto")
        check(ids(find(d, None, "mode = 'manual'")) == ["p2"], "mode = 'manual' (quoted)")
        check(ids(find(d, None, "mode=auto", "speed>1000")) == ["p1"], "two conditions AND-ed")
        check(ids(find(d, None, "alarm[dry] > 0")) == ["p1", "p2"], "a keyed point")
        check(ids(find(d, None, "speed > 99999")) == [], "nothing matches")
        for bad in ("speed", "speed >", "> 5", "sp eed = 1", "speed ~ 5", "a[b = 1"):
            o = find(d, None, bad, status=400)
            check("where" in o["error"] and "POINT OP VALUE" in o["error"],
                  "where %r: %r" % (bad, o))
        o = find(d, None, *["speed > 1"] * 9, status=400)
        check("at most 8" in o["error"], "nine conditions: %r" % o)

        # The CLI's find.
        url = "http://127.0.0.1:%d" % d.port
        r = h.run("node", "find", "--url", url, "--type", "group", "--where", "speed > 1000",
                  "--where", "mode = auto")
        check(r.returncode == 0 and "p1" in r.stdout and "p2" not in r.stdout
              and "p3" not in r.stdout, "sprig node find: %r %r" % (r.stdout, r.stderr))
        r = h.run("node", "find", "--url", url, "--where", "bad")
        check(r.returncode == 1 and "POINT OP VALUE" in r.stderr, "bad --where: %r" % r.stderr)

        # The schema as JSON, and the schema commands.
        lst = d.expect(200, "GET", "/v1/schema")
        names = [t["name"] for t in lst]
        for n in ("device", "group", "signalGenerator", "modbus", "modbusIo"):
            check(n in names, "GET /v1/schema lacks %s: %r" % (n, names))
        t = d.expect(200, "GET", "/v1/schema/signalGenerator")
        sr = [p for p in t["points"] if p["name"] == "sampleRate"][0]
        check(sr["kind"] == "number" and sr["max"] == 1000 and sr["unit"] == "Hz",
              "sampleRate in the schema: %r" % sr)
        d.expect(404, "GET", "/v1/schema/nosuchtype")
        d.expect(405, "POST", "/v1/schema", {})
        r = h.run("schema", "ls")
        check(r.returncode == 0 and "modbusIo" in r.stdout, "sprig schema ls: %r" % r.stdout)
        r = h.run("schema", "show", "modbusIo")
        check(r.returncode == 0 and "address" in r.stdout, "sprig schema show: %r" % r.stdout)
        bad = h.path("bad")
        os.mkdir(bad)
        with open(os.path.join(bad, "x.lua"), "w") as f:
            f.write('nodetype "x" {\n  points = { a = { kind = "float" } },\n}\n')
        r = h.run("schema", "check", bad)
        check(r.returncode == 1 and "x.lua:2:" in (r.stdout + r.stderr)
              and "float" in (r.stdout + r.stderr), "sprig schema check: %r %r"
              % (r.stdout, r.stderr))
        d.stop()
        h.verify(d.db, expect=0)


if __name__ == "__main__":
    main(test)
