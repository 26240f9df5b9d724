"""Acceptance: the HTTP API of `sprig run` survives malformed and hostile requests.

One daemon (no demo, so nothing else writes) gets a fixture tree, then well over 1,000
requests that must all be refused:
  - bad JSON: every truncation of valid bodies, trailing garbage, 10,000 levels of
    nesting, 1e999, NaN/Infinity literals, comments, single quotes, empty bodies;
  - wrong types for every field of nodes, points, parents and import documents;
  - unknown ids (404) and ids with a bad charset or length (400), in paths and queries;
  - path tricks: /v1/nodes/../status, %2e%2e, dot segments, 10 KB URLs; double slashes
    must be refused or mean exactly the canonical path;
  - bad UTF-8 in the body and in text values (raw bytes and bad \\u escapes);
  - huge bodies: 2 MB announced by Content-Length (answered 413 from the header alone,
    before any body byte is sent), 2 MB chunked without Content-Length, 1 MiB + 1 (the
    daemon runs with --import-max 1.5 MiB, so an import is over its limit too);
  - invalid times: bad formats, 10 fraction digits, year 10000, dates that do not exist,
    before 1970, after 2262, beyond the 5 min drift;
  - wrong methods on every endpoint (405);
  - raw malformed HTTP over a socket: garbage request lines, bad versions, a missing Host
    in HTTP/1.1, a 100 KB header, a 100 KB URL, bad Content-Length and chunking;
  - slow clients: sockets that send half a request and stall for 3 s while other
    requests are answered promptly;
and each must get the expected 4xx (a raw-socket garbage request: a 4xx or a closed
connection; an unsupported HTTP version: 505 is also accepted), never a 5xx other than
503; an error from sprig is {"error": sentence}. GET /v1/status works after every 100
requests. The root hash, node count and point count are the same before and after.

Then probes that are known to be risky, each checked on its own (expected 4xx, and
status unchanged): NUL bytes (%00 in the path and query, \\u0000 in JSON strings), the
Unix epoch as a time, and an import refused halfway. A daemon in token mode answers 401
to every request with a missing or wrong token and changes nothing. SIGTERM exits 0 and
`sprig store verify` passes on both databases.

Failures are collected and reported together, so one run lists every deviation.
"""
import json
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import Harness, TestFailure, check, main
from test_api import (Daemon, http_request, now_ns, ns_to_rfc3339, raw_exchange,
                      write_token)

HOUR = 3600 * 1_000_000_000


class Run:
    """Sends hostile requests, checks each answer, counts them, and checks that the
    daemon still answers GET /v1/status after every 100."""

    def __init__(self, d):
        self.d = d
        self.count = 0
        self.failures = []
        self.by_status = {}

    def fail(self, msg):
        self.failures.append(msg)

    def tick(self):
        self.count += 1
        if self.count % 100 == 0:
            try:
                r = http_request(self.d.port, "GET", "/v1/status", token=self.d.token, timeout=5)
                ok = r.status == 200
            except Exception as e:
                ok, r = False, repr(e)
            if not ok:
                raise TestFailure("after %d hostile requests GET /v1/status failed: %r\n%s"
                                  % (self.count, r, self.d.proc.stderr_tail()))

    def req(self, expect, method, path, body=None, headers=None, what="", chunked=False,
            token="default"):
        """expect: a status or a set of statuses."""
        exp = {expect} if isinstance(expect, int) else set(expect)
        tok = self.d.token if token == "default" else token
        try:
            r = http_request(self.d.port, method, path, body, headers, tok, timeout=10,
                             chunked=chunked)
        except Exception as e:
            self.fail("%s %.120s %s: no answer (%r)" % (method, path, what, e))
            self.tick()
            return None
        self.by_status[r.status] = self.by_status.get(r.status, 0) + 1
        desc = "%s %.120s%s" % (method, path, " [%s]" % what if what else "")
        if r.status not in exp:
            self.fail("%s: expected %s, got %r" % (desc, "/".join(map(str, sorted(exp))), r))
        elif r.status >= 500 and r.status != 503:
            self.fail("%s: a 5xx answer %r" % (desc, r))
        elif r.status >= 400 and method != "HEAD":
            try:
                o = json.loads(r.body.decode("utf-8"))
                good = isinstance(o, dict) and isinstance(o.get("error"), str) and o["error"]
            except (ValueError, UnicodeDecodeError):
                good = False
            if not good:
                self.fail("%s: the %d answer is not {\"error\": sentence}: %r"
                          % (desc, r.status, r.body[:200]))
        self.tick()
        return r

    def raw(self, data, what, allow=(), timeout=3.0, shut_write=False):
        """A raw request: a 4xx or a closed connection is right; allow adds statuses
        (e.g. 505) or "silence" (no answer within timeout, connection still open)."""
        st, out, closed = raw_exchange(self.d.port, data, timeout, shut_write)
        self.by_status[st] = self.by_status.get(st, 0) + 1
        if st is None:
            if not closed and "silence" not in allow:
                self.fail("raw %s: no answer and the connection still open after %.0f s"
                          % (what, timeout))
        elif not (400 <= st < 500 or st in allow):
            self.fail("raw %s: expected a 4xx or a closed connection, got %d: %r"
                      % (what, st, out[:200]))
        self.tick()
        return st, out


def status_key(d):
    st = d.status()
    return {"hash": st["hash"], "nodes": st["nodes"], "points": st["points"]}


# --- the corpus -----------------------------------------------------------------------------

def bad_json(run, root):
    valid = {
        "/v1/nodes": json.dumps({"type": "group", "parent": root, "id": "new-x",
                                 "points": [{"type": "a", "value": 1}]}),
        "/v1/nodes/victim/points": json.dumps([{"type": "temp", "key": "0", "value": 1.5,
                                                "text": "ok", "time": "2020-01-01T00:00:00Z"}]),
        "/v1/nodes/victim/parents": json.dumps({"op": "move", "from": root, "to": "other"}),
        "/v1/import": json.dumps({"root": root, "nodes": [{"id": "imp-x", "type": "group"}],
                                  "edges": []}),
    }
    for path, body in valid.items():
        # every strict prefix is invalid JSON
        step = 1 if len(body) < 120 else 2
        for n in range(0, len(body), step):
            exp = 400
            run.req(exp, "POST", path, body[:n].encode(), what="truncated at %d" % n)
        for tail in ("x", "]", "}", ",", "{}", "[]", " 1", "\"", "//", "/*", "\t\n}",
                     "null", ", {}", "\u00e9", "#"):
            run.req(400, "POST", path, (body + tail).encode(), what="trailing %r" % tail)
        run.req(400, "POST", path, (body + "\x00junk").encode(), what="trailing NUL")
    deep_arr = "[" * 10000 + "]" * 10000
    deep_obj = '{"a":' * 10000 + "1" + "}" * 10000
    for path in valid:
        for body, what in (
                (deep_arr, "10000 nested arrays"), (deep_obj, "10000 nested objects"),
                ('[{"type":"t","value":' + "[" * 10000 + "]" * 10000 + "}]", "nested value"),
                ('{"type":"group","parent":"x","points":' + "[" * 10000 + "]" * 10000 + "}",
                 "nested points"),
                ("", "empty"), (" ", "blank"), ("\n\r\t ", "white space"), ("null", "null"),
                ("true", "true"), ("0", "0"), ('""', "string"), ("[NaN]", "NaN"),
                ('[{"type":"t","value":NaN}]', "NaN value"),
                ('[{"type":"t","value":Infinity}]', "Infinity value"),
                ('[{"type":"t","value":-Infinity}]', "-Infinity value"),
                ('[{"type":"t","value":nan}]', "nan value"),
                ("{'type':'t'}", "single quotes"), ('{type:"t"}', "bare key"),
                ('[{"type":"t",}]', "trailing comma"), ('[{"type":"t"},]', "trailing comma 2"),
                ('[/* c */{"type":"t"}]', "comment"), ('[{"type":"t","value":0x10}]', "hex"),
                ('[{"type":"t","value":.5}]', ".5"), ('[{"type":"t","value":+1}]', "+1"),
                ('[{"type":"t","value":--1}]', "--1"),
                ('[{"type":"t","text":"\\x41"}]', "bad escape"),
                ('[{"type":"t","text":"\\u12"}]', "short \\u"),
                ('[{"type":"t","text":"unterminated}]', "unterminated string"),
                ("\ufeff\ufeff[]", "two BOMs"), ("[]" * 2, "two documents"),
                ('{"a":1}{"b":2}', "two objects")):
            run.req(400, "POST", path, body.encode(), what=what)


def huge_numbers(run, root):
    for lit in ("1e999", "-1e999", "1e400", "-1e309", "179769313486231580793728971405303415"
                "07999999999999999999999999999999999999999999999999999999999999999999999999"
                "99999999999999999999999999999999999999999999999999999999999999999999999999"
                "99999999999999999999999999999999999999999999999999999999999999999999999999"
                "99999999999999999999999999999999999999999999999999999999999999999999999999"
                "9999999999999999999999"):
        run.req(400, "POST", "/v1/nodes/victim/points",
                '[{"type":"t","value":%s}]' % lit, what="value " + lit[:12])
        run.req(400, "POST", "/v1/nodes",
                '{"type":"group","parent":"%s","points":[{"type":"t","value":%s}]}' % (root, lit),
                what="create with value " + lit[:12])
        run.req(400, "POST", "/v1/nodes/victim/points",
                '[{"type":"t","tombstone":%s}]' % lit, what="tombstone " + lit[:12])


def wrong_types(run, root):
    others = [1, 1.5, True, False, [], {}, ["x"], {"a": "b"}, -1]
    # POST /v1/nodes
    base = {"type": "group", "parent": root, "id": "wt-node"}
    for field in ("type", "parent"):
        for v in others + [None]:
            b = dict(base)
            b[field] = v
            run.req(400, "POST", "/v1/nodes", b, what="%s=%r" % (field, v))
        b = dict(base)
        del b[field]
        run.req(400, "POST", "/v1/nodes", b, what="no " + field)
    for v in others:
        run.req(400, "POST", "/v1/nodes", dict(base, id=v), what="id=%r" % v)
    for v in [1, "x", {}, True, None, {"type": "t"}, [1], ["x"], [None], [[]]]:
        run.req(400, "POST", "/v1/nodes", dict(base, points=v), what="points=%r" % (v,))
    for body in ([], "x", 1, [base], None, True):
        run.req(400, "POST", "/v1/nodes", json.dumps(body), what="body %r" % (body,))
    # bad ids, types and parents in create
    for bad in ("", " ", "a b", "a/b", "a\\b", "\u00e9", "a" * 65, "x" * 1000, "a\nb",
                "a\tb", "<script>", "a'b", "a\"b", "a%20b", "a?b", "a#b", "a*b", "a,b"):
        run.req(400, "POST", "/v1/nodes", dict(base, id=bad), what="id %r" % bad[:20])
        run.req(400, "POST", "/v1/nodes", dict(base, type=bad), what="type %r" % bad[:20])
        run.req(400, "POST", "/v1/nodes", dict(base, parent=bad), what="parent %r" % bad[:20])
    run.req(404, "POST", "/v1/nodes", dict(base, parent="no-such-parent"), what="unknown parent")
    run.req(409, "POST", "/v1/nodes", dict(base, id="victim"), what="existing id")
    run.req(409, "POST", "/v1/nodes", dict(base, id=root), what="the root's id")

    # points: every field with every wrong type
    good = {"type": "temp", "key": "0", "time": "2020-01-01T00:00:00Z", "value": 1.5,
            "text": "t", "tombstone": 0, "origin": ""}
    strings = ("type", "key", "time", "text", "origin")
    for field in strings:
        for v in others:
            run.req(400, "POST", "/v1/nodes/victim/points", [dict(good, **{field: v})],
                    what="%s=%r" % (field, v))
    for v in ["1", "1.5", "NaN", "", True, False, [], {}, [1]]:
        run.req(400, "POST", "/v1/nodes/victim/points", [dict(good, value=v)],
                what="value=%r" % (v,))
    for v in ["1", "0", "true", 2, -1, 0.5, 1.0000001, 100, [], {}, [0]]:
        run.req(400, "POST", "/v1/nodes/victim/points", [dict(good, tombstone=v)],
                what="tombstone=%r" % (v,))
    for v in [1, "x", None, [], True, [good]]:
        run.req(400, "POST", "/v1/nodes/victim/points", [good, v], what="point %r" % (v,))
    for body in ({}, good, "x", 1, True, {"points": [good]}):
        run.req(400, "POST", "/v1/nodes/victim/points", body, what="body %r" % (body,))
    run.req(400, "POST", "/v1/nodes/victim/points", [dict(good, type=None)],
            what="type null")
    g2 = dict(good)
    del g2["type"]
    run.req(400, "POST", "/v1/nodes/victim/points", [g2], what="no type")
    for bad in ("", " ", "a b", "a/b", "\u00e9", "a" * 65, "a\nb", "a.b!", "x\u200b"):
        run.req(400, "POST", "/v1/nodes/victim/points", [dict(good, type=bad)],
                what="type %r" % bad[:20])
        run.req(400, "POST", "/v1/nodes/victim/points", [dict(good, key=bad)],
                what="key %r" % bad[:20])
        if bad != "":  # an empty origin is a person's
            run.req(400, "POST", "/v1/nodes/victim/points", [dict(good, origin=bad)],
                    what="origin %r" % bad[:20])
    run.req(400, "POST", "/v1/nodes/victim/points", [dict(good, text="x" * (64 * 1024 + 1))],
            what="text over 64 KiB")
    # all or nothing: a good point before a bad one is not applied either
    run.req(400, "POST", "/v1/nodes/victim/points",
            [dict(good, type="fresh", time=None), dict(good, value="x")],
            what="good point then a bad one")

    # parents
    for field in ("op", "from", "to"):
        for v in others:
            b = {"op": "move", "from": root, "to": "other"}
            b[field] = v
            run.req(400, "POST", "/v1/nodes/victim/parents", b, what="%s=%r" % (field, v))
    for body in ({}, [], "move", {"op": "move"}, {"op": "mirror"}, {"to": "other"},
                 {"op": "MOVE", "from": root, "to": "other"},
                 {"op": "", "to": "other"}, {"op": "delete", "to": "other"},
                 {"op": "move", "to": "other"}, {"op": "move", "from": None, "to": "other"}):
        run.req(400, "POST", "/v1/nodes/victim/parents", body, what="parents %r" % (body,))
    run.req(400, "POST", "/v1/nodes/victim/parents", {"op": "mirror", "to": "bad id"})
    run.req(400, "POST", "/v1/nodes/victim/parents", {"op": "move", "from": "bad id",
                                                      "to": "other"})
    run.req(404, "POST", "/v1/nodes/victim/parents", {"op": "mirror", "to": "no-such"})
    run.req(404, "POST", "/v1/nodes/victim/parents", {"op": "move", "from": root,
                                                      "to": "no-such"})
    run.req(404, "POST", "/v1/nodes/victim/parents", {"op": "move", "from": "other",
                                                      "to": root})
    run.req(409, "POST", "/v1/nodes/victim/parents", {"op": "mirror", "to": "victim-child"})
    run.req(409, "POST", "/v1/nodes/victim/parents", {"op": "mirror", "to": "victim"})
    run.req(409, "POST", "/v1/nodes/victim/parents", {"op": "move", "from": root,
                                                      "to": "victim-child"})
    run.req(409, "POST", "/v1/nodes/victim/parents", {"op": "mirror", "to": root})

    # import: only documents whose first item is refused (see the partial-import probe)
    docs = [{}, [], {"nodes": {}}, {"nodes": "x"}, {"nodes": None}, {"nodes": [], "edges": {}},
            {"nodes": [], "edges": "x"}, {"nodes": [1]}, {"nodes": [{"id": 1, "type": "group"}]},
            {"nodes": [{"id": "n", "type": 1}]}, {"nodes": [{"id": "n"}]},
            {"nodes": [{"type": "group"}]}, {"nodes": [{"id": "bad id", "type": "group"}]},
            {"nodes": [{"id": "a" * 65, "type": "group"}]},
            {"nodes": [{"id": "n1", "type": "bad type"}]},
            {"nodes": [], "edges": [{"up": root}]}, {"nodes": [], "edges": [{"down": "victim"}]},
            {"nodes": [], "edges": [{"up": 1, "down": "victim"}]},
            {"nodes": [], "edges": [{"up": "bad id", "down": "victim"}]},
            {"nodes": [], "edges": [{"up": root, "down": "victim", "points": "x"}]},
            {"nodes": [], "edges": [{"up": root, "down": "victim", "points": [{"type": 1}]}]},
            {"nodes": [], "edges": [{"up": root, "down": "victim",
                                     "points": [{"type": "tombstone", "time": "bad"}]}]},
            {"nodes": [{"id": "victim", "type": "group", "points": "x"}]},
            {"nodes": [{"id": "victim", "type": "group", "points": [{"value": 1}]}]}]
    for doc in docs:
        run.req(400, "POST", "/v1/import", doc, what="import %.60r" % (doc,))
    for doc in ({"nodes": [], "edges": [{"up": "no-such", "down": "victim"}]},
                {"nodes": [], "edges": [{"up": root, "down": "no-such"}]}):
        run.req(404, "POST", "/v1/import", doc, what="import %.60r" % (doc,))
    run.req(409, "POST", "/v1/import", {"nodes": [{"id": "victim", "type": "other-type"}]},
            what="import a node with another type")
    run.req(409, "POST", "/v1/import",
            {"nodes": [], "edges": [{"up": "victim-child", "down": "victim",
                                     "points": [{"type": "tombstone", "value": 0}]}]},
            what="import an edge closing a cycle")


def ids_and_paths(run, root):
    # unknown ids on every node endpoint
    for i in range(12):
        nid = "unknown-%d" % i
        run.req(404, "GET", "/v1/nodes/" + nid)
        run.req(404, "GET", "/v1/nodes/%s/children" % nid)
        run.req(404, "DELETE", "/v1/nodes/%s?parent=%s" % (nid, root))
        run.req(404, "POST", "/v1/nodes/%s/points" % nid, [{"type": "t"}])
        run.req(404, "POST", "/v1/nodes/%s/parents" % nid, {"op": "mirror", "to": root})
    run.req(404, "GET", "/v1/events?node=unknown-x")
    run.req(404, "DELETE", "/v1/nodes/victim?parent=unknown-x")
    run.req(404, "DELETE", "/v1/nodes/victim?parent=other", what="not its parent")
    run.req(400, "DELETE", "/v1/nodes/" + root, what="the root")
    # ids with a bad charset or length, percent-encoded in the path
    bad_ids = ["a%20b", "%C3%A9", "a" * 65, "b" * 300, "a*b", "a%22b", "%3Cscript%3E",
               "a%0Ab", "a%09b", "a+b", "a%2Bb", "a%25b", "a;b", "a%3Fb", "a%23b", "a'b",
               "a,b", "a(b)", "a%7Eb", "~", "%E2%80%8B", "a%7Fb", "a%01b", "@", "a=b"]
    for bid in bad_ids:
        run.req(400, "GET", "/v1/nodes/" + bid, what="bad id")
        run.req(400, "GET", "/v1/nodes/%s/children" % bid, what="bad id")
        run.req(400, "DELETE", "/v1/nodes/%s?parent=%s" % (bid, root), what="bad id")
        run.req(400, "POST", "/v1/nodes/%s/points" % bid, [{"type": "t"}], what="bad id")
        run.req(400, "POST", "/v1/nodes/%s/parents" % bid, {"op": "mirror", "to": root},
                what="bad id")
        run.req(400, "GET", "/v1/events?node=" + bid, what="bad id")
        run.req(400, "GET", "/v1/nodes?type=" + bid, what="bad type")
        run.req(400, "GET", "/v1/events?type=" + bid, what="bad type")
        run.req(400, "DELETE", "/v1/nodes/victim?parent=" + bid, what="bad parent")
    run.req(400, "GET", "/v1/nodes?type=", what="empty type")
    run.req(400, "GET", "/v1/events?node=", what="empty node")
    # path tricks
    tricks = [("GET", "/v1/nodes/../status"), ("GET", "/v1/%2e%2e/v1/status"),
              ("GET", "/v1/nodes/%2e%2e/status"), ("GET", "/../v1/status"),
              ("GET", "/v1/./status"), ("GET", "/v1/status/.."), ("GET", "/v1/status/."),
              ("GET", "/v1/nodes/victim/../victim"), ("GET", "/v1/nodes/victim/children/.."),
              ("GET", "/v1/nodes/%2e%2e"), ("GET", "/v1/nodes/."), ("GET", "/v1/nodes/.."),
              ("DELETE", "/v1/nodes/..?parent=" + root), ("DELETE", "/v1/nodes/%2e"),
              ("GET", "/v1/STATUS"),
              ("GET", "/V1/status"), ("GET", "/v1/status;x"), ("GET", "/v1/status%20"),
              ("GET", "/v1/nodes/victim/children/extra"), ("GET", "/v1/nodes/victim/points/1"),
              ("GET", "/v1/a/b/c/d/e/f/g"), ("GET", "/v1/nodes/victim/x/y/z"),
              ("GET", "/v1"), ("GET", "/v1/"), ("GET", "/status"), ("GET", "/ui/../v1/status"),
              ("GET", "/ui/%2e%2e/v1/status"), ("GET", "/ui/app.js/../../v1/status"),
              ("GET", "/ui//app.js"), ("POST", "/ui/app.js"),
              ("GET", "/v1/nodes/victim/CHILDREN"),
              ("GET", "/v1/nodes/victim\\children"), ("GET", "/v1/export.json"),
              ("DELETE", "/v1/nodes/victim/../victim-child?parent=victim"),
              ("POST", "/v1/nodes/victim/points/../parents")]
    for m, p in tricks:
        exp = {400, 404, 405}
        run.req(exp, m, p, [{"type": "t", "value": 1}] if m == "POST" else None,
                what="path trick")
    # double slashes and encoded slashes or letters: refused, or exactly what the
    # canonical path answers (read-only; %76%31 is "v1", equivalent by RFC 3986)
    for p, canon in (("/v1%2fstatus", "/v1/status"), ("/v1/nodes%2fvictim", "/v1/nodes/victim"),
                     ("/%76%31/status", "/v1/status"),("//v1/status", "/v1/status"), ("/v1//status", "/v1/status"),
                     ("/v1/nodes//victim", "/v1/nodes/victim"),
                     ("/v1//nodes/victim//children", "/v1/nodes/victim/children"),
                     ("/v1/status/", "/v1/status"), ("///v1///export", "/v1/export")):
        r = run.req({200, 400, 404}, "GET", p, what="double slash")
        if r is not None and r.status == 200:
            c = http_request(run.d.port, "GET", canon, token=run.d.token)
            if p.endswith("status") or "status/" in p:
                same = c.status == 200  # uptime and counters move
            else:
                same = c.status == 200 and c.body == r.body
            if not same:
                run.fail("GET %s answered 200 but not as %s does" % (p, canon))
    # very long URLs: 10 KB in the path and in the query
    for p in ("/v1/nodes/" + "a" * 10240, "/v1/" + "x/" * 5000, "/v1/nodes/victim/" + "c" * 10240,
              "/v1/nodes?type=" + "t" * 10240, "/v1/events?node=" + "n" * 10240,
              "/v1/nodes/victim?parent=" + "p" * 10240):
        m = "DELETE" if "parent=" in p else "GET"
        run.req({400, 404, 414, 431}, m, p, what="10 KB URL")


def bad_utf8(run, root):
    bads = [b"\xff", b"\xfe", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80",
            b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80",
            b"\x80", b"\xbf", b"\xe2\x82", b"\xe2", b"\xf0\x9f\x98", b"\xc3", b"\xc3\x28",
            b"\xe2\x28\xa1", b"\x00"]
    for b in bads:
        run.req(400, "POST", "/v1/nodes/victim/points",
                b'[{"type":"t","text":"ok' + b + b'ok"}]', what="text bytes %r" % b)
        run.req(400, "POST", "/v1/nodes/victim/points",
                b'[{"type":"t' + b + b'","value":1}]', what="type bytes %r" % b)
        run.req(400, "POST", "/v1/nodes",
                b'{"type":"group","parent":"' + root.encode() + b'","points":[{"type":"d",'
                b'"text":"' + b + b'"}]}', what="create text bytes %r" % b)
        run.req(400, "POST", "/v1/import",
                b'{"nodes":[{"id":"victim","type":"group","points":[{"type":"d","text":"'
                + b + b'"}]}]}', what="import text bytes %r" % b)
    for esc in ("\\ud800", "\\udc00", "\\udbff", "\\ud800\\u0041", "\\ud800x", "\\udc00\\ud800",
                "\\uD834", "\\ud834\\ud834"):
        run.req(400, "POST", "/v1/nodes/victim/points",
                ('[{"type":"t","text":"a%sb"}]' % esc).encode(), what="escape %s" % esc)


def huge_bodies(run, root):
    # 2 MB announced by Content-Length: the 413 must come from the header alone.
    for path in ("/v1/nodes/victim/points", "/v1/nodes", "/v1/import", "/v1/status",
                 "/v1/nodes/victim/parents"):
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (path, 2 * 1024 * 1024)).encode()
        st, out = run.raw(head, "2 MB Content-Length, no body sent, %s" % path, timeout=5)
        if st != 413:
            run.fail("POST %s with Content-Length 2 MB and no body sent: expected 413 at "
                     "once, got %r" % (path, out[:200]))
    for n in (1024 * 1024 + 1, 2 * 1024 * 1024, 10 ** 9, 10 ** 18):
        head = ("POST /v1/nodes/victim/points HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                "\r\n" % n).encode()
        st, out = run.raw(head, "Content-Length %d" % n, timeout=5)
        if st != 413:
            run.fail("Content-Length %d: expected 413, got %r" % (n, out[:200]))
    big = b"[" + b'{"type":"t","value":1},' * (2 * 1024 * 1024 // 23) + b'{"type":"t"}]'
    run.req(413, "POST", "/v1/nodes/victim/points", big, what="2 MB with Content-Length")
    run.req(413, "POST", "/v1/nodes/victim/points", big, what="2 MB chunked", chunked=True)
    run.req(413, "POST", "/v1/import", big, what="2 MB chunked import", chunked=True)
    run.req(413, "POST", "/v1/nodes/victim/points", b" " * (1024 * 1024) + b"[]",
            what="1 MiB + 2 chunked", chunked=True)
    text = '[{"type":"t","text":"' + "x" * (1024 * 1024) + '"}]'
    run.req(413, "POST", "/v1/nodes/victim/points", text, what="1 MiB text")


def bad_times(run):
    now = now_ns()
    bad = ["", "now", "yesterday", "0", "1700000000", "2024-01-01", "2024-01-01T00:00:00",
           "2024-01-01 00:00:00Z", "2024-01-01T00:00Z", "2024-1-1T00:00:00Z",
           "24-01-01T00:00:00Z", "2024/01/01T00:00:00Z", "2024-01-01T00:00:00.Z",
           "2024-01-01T00:00:00.1234567890Z", "2024-01-01T00:00:00.123456789012Z",
           "10000-01-01T00:00:00Z", "99999-01-01T00:00:00Z", "0000-01-01T00:00:00Z",
           "1969-12-31T23:59:59.999999999Z", "1900-01-01T00:00:00Z",
           "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-01-00T00:00:00Z",
           "2024-01-32T00:00:00Z", "2023-02-29T00:00:00Z", "2024-02-30T00:00:00Z",
           "2024-04-31T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T23:60:00Z",
           "2024-01-01T23:59:60Z", "2024-01-01T-1:00:00Z", "2024-01-01T00:00:00+24:00",
           "2024-01-01T00:00:00+01:60", "2024-01-01T00:00:00+0100", "2024-01-01T00:00:00+01",
           "2024-01-01T00:00:00Z ", " 2024-01-01T00:00:00Z", "2024-01-01T00:00:00ZZ",
           "2024-01-01T00:00:00Zjunk", "2024-01-01T00:00:00.12a4Z", "2024-01-01T00:00:00,5Z",
           "\uff12\uff10\uff12\uff14-01-01T00:00:00Z", "-2024-01-01T00:00:00Z",
           "+2024-01-01T00:00:00Z", "2024-01-01T00:00:00UTC", "2024-01-01T00:00:00GMT",
           "2262-04-12T00:00:00Z", "2300-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
           ns_to_rfc3339(now + 10 * 60 * 1_000_000_000), ns_to_rfc3339(now + HOUR),
           ns_to_rfc3339(now + 24 * HOUR), ns_to_rfc3339(now + 365 * 24 * HOUR),
           ns_to_rfc3339(now + 6 * 60 * 1_000_000_000)]
    for t in bad:
        run.req(400, "POST", "/v1/nodes/victim/points", [{"type": "t", "value": 1, "time": t}],
                what="time %r" % t)
    for t in bad[:20] + bad[-5:]:
        run.req(400, "POST", "/v1/import",
                {"nodes": [], "edges": [{"up": "other", "down": "victim",
                                         "points": [{"type": "tombstone", "value": 1,
                                                     "time": t}]}]},
                what="edge time %r" % t)


def wrong_methods(run, root):
    ends = {"/v1/status": {"GET"}, "/v1/nodes": {"GET", "POST"},
            "/v1/nodes/victim": {"GET", "DELETE"}, "/v1/nodes/victim/children": {"GET"},
            "/v1/nodes/victim/points": {"POST"}, "/v1/nodes/victim/parents": {"POST"},
            "/v1/events": {"GET"}, "/v1/export": {"GET"}, "/v1/import": {"POST"}}
    for path, ok in ends.items():
        for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO",
                  "HEAD"):
            if m in ok:
                continue
            if m == "HEAD":
                # HEAD of a GET resource may be served; otherwise 405.
                exp = {200, 405} if "GET" in ok else {405}
            else:
                exp = {405}
            body = b"{]" if m in ("POST", "PUT", "PATCH") else None
            run.req(exp, m, path, body, what="wrong method")


RAW = [
    # no line end yet: the server may wait for one (until its 60 s connection timeout)
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, "a TLS hello",
     ("silence",)),
    (b"garbage\r\n\r\n", "one word", ()),
    (b"GET\r\n\r\n", "method only", ()),
    (b"GET /v1/status\r\n\r\n", "HTTP/0.9 style", ()),
    (b"GET /v1/status HTTP/1.1 extra\r\nHost: x\r\n\r\n", "four words", ()),
    (b"GET /v1/status HTTP/9.9\r\nHost: x\r\n\r\n", "HTTP/9.9", (505,)),
    (b"GET /v1/status HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/2.0 text", (505,)),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2 preface", (505,)),
    (b"GET /v1/status FOO/1.1\r\nHost: x\r\n\r\n", "FOO/1.1", (505,)),
    (b"GET /v1/status HTTP/1.1\r\nConnection: close\r\n\r\n", "HTTP/1.1 without Host", ()),
    (b"GET /v1/status HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n",
     "two Host headers", ()),
    (b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
     "a 100 KB header", ()),
    (b"GET /v1/status HTTP/1.1\r\nHost: x\r\n" + b"X-H: v\r\n" * 20000 + b"\r\n",
     "20000 headers", ()),
    (b"GET /v1/" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "a 100 KB URL", ()),
    (b"GET /v1/status HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n", "header no colon", ()),
    # obs-fold: RFC 9112 5.2 lets a server reject it or replace it with a space
    (b"GET /v1/status HTTP/1.1\r\nHost: x\r\n folded\r\nConnection: close\r\n\r\n",
     "obs-fold", (200,)),
    (b"POST /v1/nodes HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "CL -1", ()),
    (b"POST /v1/nodes HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "CL abc", ()),
    (b"POST /v1/nodes HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", "CL 1e3", ()),
    (b"POST /v1/nodes HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n"
     b"\r\n", "CL overflow", ()),
    (b"POST /v1/nodes/victim/points HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Content-Length: 7\r\nConnection: close\r\n\r\n[{]}]xx", "two Content-Lengths", ()),
    (b"POST /v1/nodes/victim/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Connection: close\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n", "bad chunk size", ()),
    (b"POST /v1/nodes/victim/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Connection: close\r\n\r\n" + b"ffffffffffffffffffff\r\n" + b"x" * 100 + b"\r\n",
     "chunk size overflow", ()),
    (b"POST /v1/nodes/victim/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Connection: close\r\n\r\n3\r\n[{]\r\n0\r\n\r\n", "chunked bad JSON", ()),
    (b"POST /v1/nodes/victim/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
     b"Connection: close\r\n\r\n[{]", "unknown transfer coding", ("silence",)),
    (b"GET /v1/sta\x00tus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "NUL in URL", ()),
    (b"GET /v1/st atus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "space in URL", ()),
    (b"GET /v1/nodes/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
     "raw bytes in URL", ()),
    (b"GET /v1/nodes/\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
     "UTF-8 in URL", ()),
    (b"GET v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "relative URL", ()),
    (b"GET http://evil/v1/nodes/unknown-z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
     "absolute URL", ()),
    (b"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "asterisk", ()),
    (b"\xff\xfe\xfd\r\n\r\n", "binary line", ()),
    (b"G\x00ET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", "NUL in method", ()),
    (b"GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: \xff\xfe\r\n"
     b"Connection: close\r\n\r\n", "binary header value", ("ok-200",)),
    # MHD skips what it reads as empty lines before a request line (RFC 9112 2.2 allows
    # ignoring them) and waits: silence is accepted here, an answer must still be 4xx.
    (b"\r\n\r\n\r\n", "empty lines only", ("silence",)),
    (b"\x00\x01garbage\r\n\r\n", "NUL-led garbage", ("silence",)),
]


def raw_http(run):
    for data, what, allow in RAW:
        allow = set(allow)
        if "ok-200" in allow:
            allow.add(200)  # a binary header nobody reads is harmless
        st, out = run.raw(data, what, allow=allow, timeout=2.0)


def slow_clients(run, root):
    """Half requests that stall while other clients are served."""
    socks = []
    halves = [b"GET /v1/sta",
              b"GET /v1/status HTTP/1.1\r\nHost: x\r\n",
              b"POST /v1/nodes/victim/points HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n"
              b"\r\n[{\"type\":\"t\",",
              b"POST /v1/nodes/victim/points HTTP/1.1\r\nHost: x\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n10\r\n[{\"type\":\"t\","]
    try:
        for i in range(24):
            s = socket.create_connection(("127.0.0.1", run.d.port), timeout=5)
            s.sendall(halves[i % len(halves)])
            socks.append(s)
        t_end = time.monotonic() + 3.0
        worst, n = 0.0, 0
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            r = run.req(200, "GET", "/v1/status", what="while 24 clients stall")
            run.req(404, "GET", "/v1/nodes/unknown-slow", what="while 24 clients stall")
            worst = max(worst, time.monotonic() - t0)
            n += 1
            time.sleep(0.05)
        if worst > 1.0:
            run.fail("with 24 stalled clients a GET /v1/status took %.2f s" % worst)
        print("slow clients: %d rounds answered while 24 sockets stalled 3 s (slowest %.1f ms)"
              % (n, worst * 1000))
        # finish one stalled POST with a body that is bad JSON: it must get its 400
        s = socks[2]
        rest = b"\"value\":1}]"
        s.sendall(rest + b"x" * (200 - len(b"[{\"type\":\"t\",") - len(rest)))
        s.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                b = s.recv(4096)
                if not b:
                    break
                data += b
        except socket.timeout:
            pass
        if not data.startswith(b"HTTP/1.1 400"):
            run.fail("a stalled POST completed with trailing garbage: expected 400, got %r"
                     % data[:200])
    finally:
        for s in socks:
            s.close()


def check_unchanged(run, d, before, what):
    after = status_key(d)
    if after != before:
        run.fail("%s changed the tree: before %r, after %r" % (what, before, after))
    return after


def risky_probes(run, d, root):
    """Each probe on its own: the expected 4xx, and nothing changed."""
    probes = [
        ("DELETE", "/v1/nodes/victimB%00junk?parent=" + root, None,
         "DELETE of id \"victimB\\0junk\" (%00 in the path)"),
        ("GET", "/v1/nodes/victimB%00junk", None, "GET of id \"victimB\\0junk\""),
        ("POST", "/v1/nodes/victimB%00junk/points", [{"type": "t", "value": 1}],
         "POST points to id \"victimB\\0junk\""),
        ("GET", "/v1/nodes?type=group%00junk", None, "?type=group\\0junk"),
        ("RAW", "/v1/events?node=victimB%00junk", None, "events ?node=victimB\\0junk"),
        ("POST", "/v1/nodes/victimB/points", '[{"type":"t","text":"a\\u0000b"}]',
         "text \"a\\u0000b\""),
        ("POST", "/v1/nodes/victimB/points", '[{"type":"t\\u0000junk","value":1}]',
         "point type \"t\\u0000junk\""),
        ("POST", "/v1/nodes/victimB/points", '[{"type\\u0000junk":"t2","value":1}]',
         "member name \"type\\u0000junk\" (no \"type\")"),
        ("POST", "/v1/nodes/victimB/points", '[{"type":"t","key":"k\\u0000x","value":1}]',
         "key \"k\\u0000x\""),
        ("POST", "/v1/nodes", '{"type":"group","parent":"%s","id":"nul\\u0000id"}' % root,
         "create id \"nul\\u0000id\""),
        ("POST", "/v1/nodes/victimB/points",
         '[{"type":"t","value":1,"time":"1970-01-01T00:00:00Z"}]',
         "time 1970-01-01T00:00:00Z (the epoch: not after it, so refused)"),
        ("POST", "/v1/nodes/victimB/points",
         '[{"type":"t","value":1,"time":"1970-01-01T01:00:00+01:00"}]',
         "time 1970-01-01T01:00:00+01:00 (the epoch again)"),
        ("POST", "/v1/import",
         {"root": root, "nodes": [{"id": "imp-partial", "type": "group"},
                                  {"id": "bad id!", "type": "group"}]},
         "import whose second node is refused"),
        ("POST", "/v1/import",
         {"root": root, "nodes": [{"id": "imp-half", "type": "group",
                                   "points": [{"type": "bad type!"}]}],
          "edges": [{"up": root, "down": "imp-half",
                     "points": [{"type": "tombstone", "value": 0}]}]},
         "import whose node points are refused after its edges"),
        # Invalid JSON that cJSON 1.7.15 lets through (RFC 8259: no "1.", no raw control
        # characters in strings, \u needs 4 hex digits).
        ("POST", "/v1/nodes/victimB/points", '[{"type":"t","text":"x\\uZZZZy"}]',
         "bad escape \\uZZZZ in a text"),
        ("POST", "/v1/nodes/victimB/points", '[{"type":"t","text":"x\\u00zzy"}]',
         "bad escape \\u00zz in a text"),
        ("POST", "/v1/nodes/victimB/points", '[{"type":"t","value":1.}]', "number 1."),
        ("POST", "/v1/nodes/victimB/points", '[{"type":"t","text":"line\nbreak"}]',
         "a raw line feed inside a string"),
    ]
    for m, p, body, what in probes:
        before = status_key(d)
        if m == "RAW":  # a stream if it is (wrongly) accepted: read the status line only
            st, out, _ = raw_exchange(d.port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                                               % p).encode(), 2.0)
            run.count += 1
            r = out[:120]
            if st not in (400, 404):
                run.fail("GET %s [%s]: expected 400/404, got %r" % (p, what, out[:160]))
        else:
            r = run.req({400, 404, 405}, m, p, body, what=what)
        after = status_key(d)
        if after != before:
            run.fail("%s %s [%s]: answered %s, and the tree changed: %r -> %r"
                     % (m, p, what, r, before, after))
    for nid in ("imp-partial", "imp-half", "nul"):
        r = http_request(d.port, "GET", "/v1/nodes/" + nid)
        if r.status != 404:
            run.fail("after refused requests node %s exists: %r" % (nid, r))
    # An error that quotes what was sent shows bytes that are not UTF-8 or are control
    # characters as \xNN (the body stays UTF-8 JSON), and %00 as it was sent.
    for p, shown in (("/v1/nodes/%FF%FE", '"\\xff\\xfe"'), ("/v1/nodes/a%00b", '"a%00b"'),
                     ("/v1/nodes/a%01b%7F", '"a\\x01b\\x7f"'),
                     ("/v1/nodes/caf%C3%A9%C3", '"caf\u00e9\\xc3"')):
        r = http_request(d.port, "GET", p)
        run.count += 1
        try:
            sentence = json.loads(r.body.decode("utf-8"))["error"]
        except (UnicodeDecodeError, ValueError, KeyError):
            run.fail("GET %s: the error body is not UTF-8 JSON: %r" % (p, r.body))
            continue
        if r.status != 400 or shown not in sentence:
            run.fail("GET %s: expected 400 quoting %s, got %d %r" % (p, shown, r.status,
                                                                    sentence))


def token_mode(h, results):
    tok, path = write_token(h)
    d = Daemon(h, h.path("token.db"), name="token", token=tok, token_file=path)
    root = d.status()["root"]
    d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": root, "id": "victim"})
    before = status_key(d)
    run = Run(d)
    wrongs = [None, "", "Bearer", "Bearer ", "Bearer " + "0" * 32, "Bearer " + tok[:-1],
              "Bearer " + tok + "x", "Bearer " + tok[1:] + tok[0], "Bearer " + tok * 2,
              "Basic " + tok, "Token " + tok, tok, "Bearer:" + tok, "Bearer\t" + tok,
              "Bearer " + tok[:31] + chr(ord(tok[31]) ^ 1), "Bearer " + "x" * 1000,
              "Bearer " + tok[:16], "BEARER" + tok]
    reqs = [("GET", "/v1/status", None), ("GET", "/v1/nodes", None),
            ("GET", "/v1/nodes/victim", None), ("GET", "/v1/nodes/victim/children", None),
            ("DELETE", "/v1/nodes/victim?parent=" + root, None),
            ("POST", "/v1/nodes", {"type": "group", "parent": root, "id": "intruder"}),
            ("POST", "/v1/nodes/victim/points", [{"type": "t", "value": 1}]),
            ("POST", "/v1/nodes/victim/parents", {"op": "mirror", "to": root}),
            ("GET", "/v1/events", None), ("GET", "/v1/export", None),
            ("POST", "/v1/import", {"nodes": [{"id": "intruder", "type": "group"}]}),
            ("GET", "/v1/nothing", None), ("PUT", "/v1/nodes", b"{}")]
    for auth in wrongs:
        hdr = {} if auth is None else {"Authorization": auth}
        for m, p, b in reqs:
            run.req(401, m, p, b, headers=hdr, token=None, what="Authorization %.40r" % auth)
    # a huge body with a wrong token: 401 (not 413), from the headers alone
    st, out, _ = raw_exchange(d.port, b"POST /v1/nodes HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: 2097152\r\n\r\n", 5)
    run.count += 1
    if st != 401:
        run.fail("token mode, no token, Content-Length 2 MB: expected 401, got %r" % out[:200])
    after = status_key(d)
    if after != before:
        run.fail("token mode: refused requests changed the tree: %r -> %r" % (before, after))
    d.expect(404, "GET", "/v1/nodes/intruder")
    d.expect(200, "GET", "/v1/nodes/victim")
    results.append(run)
    d.stop()
    h.verify(d.db, expect=0)


def test():
    with Harness("api-hostile") as h:
        # Imports take up to 1.5 MiB here (64 MiB by default), so that the 2 MB bodies
        # are over every route's limit.
        d = Daemon(h, h.path("hostile.db"), "--import-max", "1572864", name="hostile")
        root = d.status()["root"]
        # fixture: root -> victim -> victim-child; root -> other; root -> victimB
        for nid, parent in (("victim", root), ("victim-child", "victim"), ("other", root),
                            ("victimB", root)):
            d.expect(201, "POST", "/v1/nodes",
                     {"type": "group", "parent": parent, "id": nid,
                      "points": [{"type": "description", "text": "fixture " + nid},
                                 {"type": "value", "value": 1.25}]})
        before = status_key(d)
        run = Run(d)
        t0 = time.monotonic()
        for name, fn in (("bad JSON", lambda: bad_json(run, root)),
                         ("huge numbers", lambda: huge_numbers(run, root)),
                         ("wrong types", lambda: wrong_types(run, root)),
                         ("ids and paths", lambda: ids_and_paths(run, root)),
                         ("bad UTF-8", lambda: bad_utf8(run, root)),
                         ("huge bodies", lambda: huge_bodies(run, root)),
                         ("bad times", lambda: bad_times(run)),
                         ("wrong methods", lambda: wrong_methods(run, root)),
                         ("raw HTTP", lambda: raw_http(run)),
                         ("slow clients", lambda: slow_clients(run, root))):
            n0, f0 = run.count, len(run.failures)
            fn()
            print("%-14s %4d requests, %d failures" % (name, run.count - n0,
                                                       len(run.failures) - f0))
        print("%d hostile requests in %.1f s; answers by status: %s"
              % (run.count, time.monotonic() - t0,
                 ", ".join("%s: %d" % (k, v) for k, v in sorted(run.by_status.items(),
                                                                 key=lambda kv: str(kv[0])))))
        check(run.count >= 1000, "only %d hostile requests were sent" % run.count)
        check(d.proc.alive(), "the daemon died\n%s" % d.proc.stderr_tail())
        check_unchanged(run, d, before, "the hostile corpus")

        n0, f0 = run.count, len(run.failures)
        risky_probes(run, d, root)
        print("%-14s %4d requests, %d failures" % ("risky probes", run.count - n0,
                                                   len(run.failures) - f0))
        results = []
        token_mode(h, results)
        trun = results[0]
        print("%-14s %4d requests, %d failures" % ("token mode", trun.count,
                                                   len(trun.failures)))
        d.stop()
        h.verify(d.db, expect=0)
        fails = run.failures + trun.failures
        if fails:
            shown = fails[:80]
            raise TestFailure("%d of %d hostile requests were not answered as expected:\n  %s%s"
                              % (len(fails), run.count + trun.count, "\n  ".join(shown),
                                 "\n  ... and %d more" % (len(fails) - len(shown))
                                 if len(fails) > len(shown) else ""))


if __name__ == "__main__":
    main(test)
