"""Acceptance: the web UI's side of the HTTP API, over plain HTTP (the browser test,
test_web_ui.py, drives the page itself):
  - GET / is the page (text/html) and every file it loads (<script src>, <link href>,
    and each `import ... from "./x.js"` of the scripts) is served from /ui/ with its
    content type, nosniff, and a Content-Security-Policy that keeps the page to this
    server (default-src 'self', no inline script); HEAD answers the same headers;
  - an ETag is given and If-None-Match with it answers 304 with no body;
  - an unknown path outside /v1 is 404 as {"error": ...}; POST / is 405;
  - with --token-file: the page and its files need no token, while /v1/status without it
    is 401 and with it 200;
  - POST /v1/rules/compile: a good script {"ok": true}; a syntax error {"ok": false,
    "error": "NAME:LINE: ...", "line": LINE} naming the line, with the name given (or
    "rule"); bytecode-looking text and an empty script handled; a bad body 400 naming the
    expected shape; GET 405; it never creates or changes a node (the tree hash and node
    count are the same before and after).
Each daemon is stopped by pid; every wait is bounded.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main  # noqa: E402
from test_api import Daemon, check_error, write_token  # noqa: E402


def header(r, name):
    return r.headers.get(name.lower())


def assets_of(d):
    """The page and every file it pulls in, by following its references."""
    r = d.get("/")
    check(r.status == 200, "GET /: %r" % r)
    html = r.text()
    todo = re.findall(r'(?:src|href)="(/ui/[^"]+)"', html)
    check(len(todo) >= 2, "the page references its script and style under /ui/: %r" % todo)
    seen = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        r = d.get(path)
        check(r.status == 200, "GET %s (referenced by the page): %r" % (path, r))
        seen[path] = r
        if path.endswith(".js"):
            for m in re.findall(r'from "\./([\w.-]+\.js)"', r.text()):
                todo.append("/ui/" + m)
    return r, seen


def test_files(d):
    r = d.get("/")
    check(header(r, "Content-Type").startswith("text/html"), "GET / type: %r" % r.headers)
    check("<title>sprig</title>" in r.text(), "GET / is the sprig page: %r" % r)
    csp = header(r, "Content-Security-Policy") or ""
    check("default-src 'self'" in csp and "unsafe-inline" not in csp,
          "the page's CSP keeps it to this server, no inline script: %r" % csp)
    check(header(r, "X-Content-Type-Options") == "nosniff", "nosniff: %r" % r.headers)
    _, files = assets_of(d)
    types = {".js": "text/javascript", ".css": "text/css"}
    for path, fr in files.items():
        want = types[os.path.splitext(path)[1]]
        check((header(fr, "Content-Type") or "").startswith(want),
              "%s is served as %s: %r" % (path, want, fr.headers))
        check(len(fr.body) > 100, "%s has content: %d bytes" % (path, len(fr.body)))
    check(any(p.endswith("/app.js") for p in files) and
          any(p.endswith("/rule.js") for p in files),
          "the page's modules include app.js and the rule editor: %r" % sorted(files))
    print("page and %d files served (%s)" % (len(files), ", ".join(sorted(files))))

    etag = header(r, "ETag")
    check(etag is not None and etag.startswith('"'), "GET / has an ETag: %r" % r.headers)
    r2 = d.get("/", headers={"If-None-Match": etag})
    check(r2.status == 304 and r2.body == b"", "If-None-Match with the ETag: 304, no body: %r" % r2)
    r3 = d.get("/", headers={"If-None-Match": '"0000000000000000"'})
    check(r3.status == 200 and r3.body == r.body, "another ETag gets the page: %r" % r3)
    rh = d.req("HEAD", "/ui/app.js")
    check(rh.status == 200 and rh.body == b"" and
          (header(rh, "Content-Type") or "").startswith("text/javascript"),
          "HEAD /ui/app.js: %r %r" % (rh, rh.headers))

    for path in ("/nope", "/ui/nope.js", "/ui/", "/ui/../v1/status"):
        r = d.get(path)
        check(r.status == 404, "GET %s: expected 404, got %r" % (path, r))
        check_error(r.json(), "GET %s" % path)
        check(path in r.json()["error"], "GET %s: the 404 names the path: %r" % (path, r))
    r = d.post("/", b"x")
    check(r.status == 405, "POST /: expected 405, got %r" % r)
    check_error(r.json(), "POST /")
    check("POST /" in r.json()["error"], "the 405 names the method and path: %r" % r)


def test_compile(d):
    before = d.expect(200, "GET", "/v1/status")
    o = d.expect(200, "POST", "/v1/rules/compile",
                 {"script": 'on({node="a", point="value"}, function(ev) set("b", "x", 1) end)\n',
                  "name": "good.lua"})
    check(o == {"ok": True}, "a good script compiles: %r" % o)
    script = "local a = 1\nlocal b = 2\nlocal c = = 3\n"
    o = d.expect(200, "POST", "/v1/rules/compile", {"script": script, "name": "mine.lua"})
    check(o.get("ok") is False and o.get("line") == 3, "a syntax error on line 3: %r" % o)
    check(o.get("error", "").startswith("mine.lua:3:") and "near" in o["error"],
          "the message names the chunk and line, as the engine would: %r" % o)
    o = d.expect(200, "POST", "/v1/rules/compile", {"script": "x = (1"})
    check(o.get("ok") is False and o.get("error", "").startswith("rule:1:") and o["line"] == 1,
          "no name: the chunk is \"rule\": %r" % o)
    o = d.expect(200, "POST", "/v1/rules/compile", {"script": "for i = 1, 3 do\n"})
    check(o.get("ok") is False and o.get("line") == 2 and "'end' expected" in o["error"],
          "an unclosed block is reported at the end: %r" % o)
    o = d.expect(200, "POST", "/v1/rules/compile", {"script": "\x1bLua"})
    check(o.get("ok") is False, "bytecode is never loaded: %r" % o)
    o = d.expect(200, "POST", "/v1/rules/compile", {"script": ""})
    check(o == {"ok": True}, "an empty script compiles: %r" % o)
    for body, what in (({"scrip": "x"}, "no script"), ({"script": 5}, "script not text"),
                       ([1], "not an object"), ("{", "not JSON"),
                       ({"script": "x=1", "name": 3}, "name not text")):
        o = d.expect(400, "POST", "/v1/rules/compile", body, what=what)
        check("script" in o["error"] or "JSON" in o["error"], "%s: %r" % (what, o))
    d.expect(405, "GET", "/v1/rules/compile")
    after = d.expect(200, "GET", "/v1/status")
    check(after["hash"] == before["hash"] and after["nodes"] == before["nodes"],
          "compiling changes nothing stored: %r -> %r" % (before, after))
    print("compile: ok, syntax errors with line, bad bodies refused, nothing stored")


def test_token(h):
    tok, path = write_token(h)
    d = Daemon(h, h.path("token.db"), token_file=path, token=tok, name="sprig-token")
    files = [p for p in assets_of(d)[1]]
    for p in ["/"] + files:
        r = d.get(p, token=None)
        check(r.status == 200, "GET %s without a token: the UI is public, got %r" % (p, r))
    r = d.get("/v1/status", token=None)
    check(r.status == 401, "GET /v1/status without a token: expected 401, got %r" % r)
    r = d.post("/v1/rules/compile", {"script": "x=1"}, token=None)
    check(r.status == 401, "POST /v1/rules/compile without a token: expected 401, got %r" % r)
    d.expect(200, "GET", "/v1/status")
    print("token: page public, API 401 without it, 200 with it")


def test():
    with Harness("api_ui") as h:
        d = Daemon(h, h.path("ui.db"))
        test_files(d)
        test_compile(d)
        test_token(h)


if __name__ == "__main__":
    main(test)
