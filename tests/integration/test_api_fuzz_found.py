"""Regressions found by the fuzz target fuzz_api_json (tests/fuzz/README.md), replayed
against a real daemon: each request must be refused with a 4xx whose body is valid UTF-8
JSON {"error": sentence}, and must leave the tree (root hash, node and point counts) as
it was.

  - An error sentence quotes a value cut to a length ("%.40s"); a cut inside a multi-byte
    character left half of it, so the answer was not UTF-8 (first seen on
    POST /v1/rules/compile with an array body). Also ids cut in errors, in the body and
    in the path, and a path with a byte that is not UTF-8 at all.
  - cJSON skips every byte up to the space as whitespace, so a body with a raw control
    character between tokens ("[...]\\x01") was taken as JSON.
And accepted ones that must survive a restart with the same root hash:
  - a value of -0 (an edge tombstone of -0 in an import, a point of -0): SQLite stores a
    REAL -0.0 as 0, so the daemon hashed another tree than a restart loaded.
"""
import json
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import Harness, check, main
from test_api import Daemon, http_request

E = "\u00e9"  # two bytes in UTF-8


def cases(root):
    arr = ('[{"type":"vl::::::::::::2:::::::::00:\U0006e4a6r1Z","origie":"rule-2"}]')
    return [
        ("compile: an array body with a character cut by the quote", "POST",
         "/v1/rules/compile", ('["' + E * 30 + '"]').encode(), 400, "not an object"),
        ("compile: the body the fuzzer found (array, then \\x01)", "POST",
         "/v1/rules/compile", arr.encode() + b"\x01", 400, "control character"),
        ("compile: the same array without the \\x01", "POST", "/v1/rules/compile",
         arr.encode(), 400, "not an object"),
        ("points: a raw control character after the JSON", "POST",
         "/v1/nodes/%s/points" % root, b'[{"type":"t","value":1}]\x01', 400,
         "control character"),
        ("points: a raw control character between tokens", "POST",
         "/v1/nodes/%s/points" % root, b'[\x1f{"type":"t","value":1}]', 400,
         "control character"),
        ("nodes: an id of 40 two-byte characters", "POST", "/v1/nodes",
         json.dumps({"type": "group", "parent": root, "id": E * 40},
                    ensure_ascii=False).encode(), 400, "is not 1-64 bytes"),
        ("import: an id of 40 two-byte characters", "POST", "/v1/import",
         json.dumps({"nodes": [{"id": E * 40, "type": "group"}]},
                    ensure_ascii=False).encode(), 400, "is not 1-64 bytes"),
        ("a node id of 40 two-byte characters in the path", "GET",
         "/v1/nodes/" + "%C3%A9" * 40, None, 400, "is not 1-64 bytes"),
        ("a path with a byte that is not UTF-8", "GET", "/v1/nothing%FF%C3", None, 404,
         "no such endpoint"),
    ]


def key(d):
    st = d.status()
    return st["hash"], st["nodes"], st["points"]


def test():
    with Harness("api_fuzz_found") as h:
        d = Daemon(h, h.path("found.db"), name="found")
        root = d.status()["root"]
        d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": root, "id": "g1"})
        before = key(d)
        for what, method, path, body, status, words in cases(root):
            r = http_request(d.port, method, path, body)
            check(r.status == status, "%s: expected %d, got %r" % (what, status, r))
            try:
                text = r.body.decode("utf-8", "strict")
            except UnicodeDecodeError as e:
                check(False, "%s: the answer is not UTF-8 (%s): %r" % (what, e, r.body))
            o = json.loads(text)
            check(isinstance(o, dict) and set(o) == {"error"} and o["error"].strip(),
                  "%s: not {\"error\": sentence}: %r" % (what, o))
            check(words in o["error"], "%s: the error does not say %r: %r"
                  % (what, words, o["error"]))
            check(key(d) == before, "%s: the tree changed" % what)
            print("%s: %d %s" % (what, r.status, o["error"][:120]))
        d.expect(200, "POST", "/v1/import",
                 '{"root":"R","nodes":[{"id":"n1","type":"group","points":[{"type":"tag",'
                 '"value":-0}]}],"edges":[{"up":"R","down":"n1","points":[{"type":"tombstone",'
                 '"value":-0}]}]}')
        d.expect(200, "POST", "/v1/nodes/g1/points", '[{"type":"level","value":-0.0}]')
        kept = key(d)
        d.stop()
        h.verify(d.db, expect=0)
        d2 = Daemon(h, d.db, name="restarted")
        check(key(d2) == kept, "after a restart the tree is %r, before it %r" % (key(d2), kept))
        d2.stop()


if __name__ == "__main__":
    main(test)
