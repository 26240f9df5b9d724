"""Acceptance: the CLI commands that talk to a running daemon over its HTTP API (`sprig node
ls|tree|get|add|rm|mv|mirror`, `sprig point get|set`, `sprig watch`, `sprig status`,
`sprig export`, `sprig import`, global flags --url, --token-file, --json), each checked
against the API's own view (GET /v1/... through urllib) of a real `sprig run` it starts:
  - every command's --help exits 0 and names the global flags;
  - node add (--id or a server-made UUIDv4; --point TYPE=VALUE as a number, a text, with a
    [KEY], a negative number) prints the id, and GET /v1/nodes/{id} has exactly those
    points; node add --json prints the server's {"id"};
  - node get prints id, type, parent, hash and every point with its exact time;
    --json equals GET /v1/nodes/{id};
  - node ls prints a header and exactly one row (id, type, parent, hash) per node of
    GET /v1/nodes; --json equals GET /v1/nodes; --type filters;
  - node tree draws every node once per parent, indented 2 spaces per level under its
    parent, with its description; a mirrored node under each of its parents (as its
    --help says);
  - node mv / mirror / rm print their one line and the API shows the new parents; a
    removed node is "deleted" and leaves node ls (table and --json);
  - point set then point get: the exact value (bit for bit) and text, the time equal to
    the API's, --key; a VALUE that is not a number exits 2 naming it and writes nothing;
    a text over the server's limit and an unknown node exit 1 and print the server's own
    error sentence (the one the API answers to the same request) with the HTTP status;
  - status shows the root and root hash of GET /v1/status (text and --json);
  - watch --node X --type T (a subprocess, stdout read by a thread, bounded waits) prints
    a line for a point set meanwhile (node, type, value, the time to the millisecond),
    not for other types or nodes outside X's subtree; --json prints the event as sent;
    SIGINT ends it with exit 0;
  - export > FILE then import FILE into a second, fresh daemon: equal root hash and
    counts (both read with `sprig status --json`), for a tree of several levels with a
    mirror, a deleted node, texts and root points; importing it again changes nothing;
  - token mode: against `sprig run --token-file`, a command without --token-file exits
    1 with the 401 and a hint naming --token-file; with it, it works;
  - an unreachable --url exits 1 and names the URL.
Every process is stopped by pid (SIGTERM/SIGINT, or SIGKILL by the harness on failure),
every wait is bounded. Deviations from a command's documented behaviour are collected
and reported together at the end, so one does not hide the others.
"""
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import SCHEMA_ARGS, Harness, TestFailure, check, free_port, main
from test_api import UUID4, Daemon, write_token

HELP_FLAGS = ("--url", "--token-file", "--json", "--help")
COMMANDS = (["node", "ls"], ["node", "tree"], ["node", "get"], ["node", "add"],
            ["node", "rm"], ["node", "mv"], ["node", "mirror"], ["point", "get"],
            ["point", "set"], ["watch"], ["status"], ["export"], ["import"])
TREE_LINE = re.compile(r"^( *)(\S+) \(([^)]*)\)(.*)$")
TIME_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z)  (.*)$")


# --- the API's view, through urllib ------------------------------------------------------

def api(port, method, path, body=None, token=None, timeout=10):
    """One request; returns (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw.decode("utf-8"))
        except ValueError:
            raise TestFailure("%s %s: answer %d is not JSON: %r" % (method, path, e.code, raw))


def api_get(port, path, token=None):
    st, o = api(port, "GET", path, token=token)
    check(st == 200, "GET %s: expected 200, got %d %r" % (path, st, o))
    return o


def point_of(node, type_, key="0"):
    for p in node["points"]:
        if p["type"] == type_ and p["key"] == key:
            return p
    return None


# --- running the CLI ---------------------------------------------------------------------

class Cli:
    """Runs `sprig ARGS --url URL [--token-file F]` (bounded) and checks its exit code."""

    def __init__(self, h, port, token_file=None):
        self.h = h
        self.url = "http://127.0.0.1:%d" % port
        self.token_file = token_file

    def run(self, *args, code=0, url=True, token=True):
        full = list(args)
        if url:
            full += ["--url", self.url]
        if token and self.token_file is not None:
            full += ["--token-file", self.token_file]
        r = self.h.run(*full, timeout=20)
        check(r.returncode == code, "sprig %s: expected exit %d, got %d\nstdout:\n%s\n"
              "stderr:\n%s" % (" ".join(full), code, r.returncode, r.stdout, r.stderr))
        if code == 0:
            check(r.stderr == "", "sprig %s succeeded but wrote to stderr: %r"
                  % (" ".join(full), r.stderr))
        return r

    def out(self, *args):
        return self.run(*args).stdout

    def json(self, *args):
        s = self.out(*(list(args) + ["--json"]))
        try:
            return json.loads(s)
        except ValueError:
            raise TestFailure("sprig %s --json: output is not JSON: %r" % (" ".join(args), s))




# --- the parts of the test -----------------------------------------------------------------

def test_help(h):
    for cmd in COMMANDS:
        r = h.run(*(cmd + ["--help"]), timeout=10)
        check(r.returncode == 0, "sprig %s --help exited %d: %r" % (" ".join(cmd),
                                                                    r.returncode, r.stderr))
        for f in HELP_FLAGS:
            check(f in r.stdout, "sprig %s --help does not mention %s:\n%s"
                  % (" ".join(cmd), f, r.stdout))


def test_add_get(c, port, root):
    out = c.out("node", "add", "--type", "group", "--parent", root, "--id", "plant",
                "--point", "description=Main plant", "--point", "setpoint=21.5")
    check(out == "plant\n", "node add --id plant printed %r, expected the id" % out)
    n = api_get(port, "/v1/nodes/plant")
    check(n["type"] == "group" and n["parent"] == root,
          "node add plant: the API has type %r parent %r" % (n["type"], n["parent"]))
    d, s = point_of(n, "description"), point_of(n, "setpoint")
    check(d is not None and d["text"] == "Main plant" and d["value"] == 0,
          "node add --point description=Main plant: the API has %r" % d)
    check(s is not None and s["value"] == 21.5 and s["text"] == "",
          "node add --point setpoint=21.5: the API has %r" % s)
    check(len(n["points"]) == 2, "node add plant with 2 points: the API has %r" % n["points"])

    # A server-made id; a keyed text point and a negative number.
    out = c.out("node", "add", "--type", "sensor", "--parent", "plant",
                "--point", "unit[k1]=degC", "--point", "offset=-3.25")
    gen = out.strip()
    check(UUID4.fullmatch(gen) is not None and out == gen + "\n",
          "node add without --id printed %r, expected one UUIDv4 line" % out)
    n = api_get(port, "/v1/nodes/" + gen)
    check(n["type"] == "sensor" and n["parent"] == "plant", "node %s in the API: %r" % (gen, n))
    u, o = point_of(n, "unit", "k1"), point_of(n, "offset")
    check(u is not None and u["text"] == "degC", "--point unit[k1]=degC: the API has %r" % u)
    check(o is not None and o["value"] == -3.25 and o["text"] == "",
          "--point offset=-3.25: the API has %r" % o)

    # --json prints the server's answer.
    o = c.json("node", "add", "--type", "group", "--parent", "plant", "--id", "line1",
               "--point", "description=Line one")
    check(o == {"id": "line1"}, "node add --json printed %r, expected {\"id\": \"line1\"}" % o)
    for nid, parent, typ, extra in (("line2", "plant", "group", ["description=Line two"]),
                                    ("t1", "line1", "sensor", ["description=Boiler temp",
                                                               "value=72.25"]),
                                    ("t2", "line1", "sensor", ["value=1"]),
                                    ("t3", "line2", "sensor", ["note=to be removed"])):
        args = ["node", "add", "--type", typ, "--parent", parent, "--id", nid]
        for p in extra:
            args += ["--point", p]
        out = c.out(*args)
        check(out == nid + "\n", "node add --id %s printed %r" % (nid, out))
        check(api_get(port, "/v1/nodes/" + nid)["parent"] == parent,
              "node add %s: not under %s in the API" % (nid, parent))

    # node get, text: id, type, parent, hash, then every point with its exact time.
    n = api_get(port, "/v1/nodes/t1")
    out = c.out("node", "get", "t1")
    lines = out.splitlines()
    check(lines[:4] == ["id      t1", "type    sensor", "parent  line1",
                        "hash    " + n["hash"]],
          "node get t1: the first lines %r do not match the API (hash %s)"
          % (lines[:4], n["hash"]))
    check("points:" in lines, "node get t1: no \"points:\" heading:\n%s" % out)
    for p in n["points"]:
        want = "  %-30s  %s = " % (p["time"], p["type"])
        check(any(ln.startswith(want) for ln in lines),
              "node get t1: no line for the point %r (looked for %r):\n%s" % (p, want, out))
    check("  %-30s  description = \"Boiler temp\"" % point_of(n, "description")["time"]
          in lines and "  %-30s  value = 72.25" % point_of(n, "value")["time"] in lines,
          "node get t1: the description and value lines are not exact:\n%s" % out)
    check(c.json("node", "get", "t1") == n, "node get t1 --json differs from GET /v1/nodes/t1")
    r = c.run("node", "get", "no-such-node", code=1)
    check("no-such-node" in r.stderr and "HTTP 404" in r.stderr,
          "node get of an unknown node: stderr %r" % r.stderr)
    return gen


def check_ls(c, port, what):
    """node ls (table and --json) against GET /v1/nodes; returns the API's list."""
    lst = api_get(port, "/v1/nodes")
    out = c.out("node", "ls")
    lines = out.splitlines()
    check(lines and lines[0].split() == ["ID", "TYPE", "PARENT", "HASH"],
          "%s: node ls header is %r" % (what, lines[:1]))
    rows = []
    for ln in lines[1:]:
        f = ln.split()
        if len(f) == 3:  # the root: empty parent
            f = [f[0], f[1], "", f[2]]
        check(len(f) == 4, "%s: node ls row %r is not id, type, parent, hash" % (what, ln))
        rows.append(tuple(f))
    want = [(n["id"], n["type"], n["parent"], n["hash"]) for n in lst]
    check(sorted(rows) == sorted(want), "%s: node ls rows\n  %r\ndiffer from GET /v1/nodes\n"
          "  %r" % (what, sorted(rows), sorted(want)))
    check(c.json("node", "ls") == lst, "%s: node ls --json differs from GET /v1/nodes" % what)
    return lst


def parse_tree(out):
    """node tree output -> [(depth, id, type, rest)]; fails on a line that is not a node."""
    res = []
    for ln in out.splitlines():
        m = TREE_LINE.match(ln)
        check(m is not None and len(m.group(1)) % 2 == 0,
              "node tree: line %r is not INDENT ID (TYPE)" % ln)
        res.append((len(m.group(1)) // 2, m.group(2), m.group(3), m.group(4)))
    return res


def parent_in_tree(drawn, i):
    """The id drawn as the parent of line i (the nearest line above, one level less)."""
    depth = drawn[i][0]
    for j in range(i - 1, -1, -1):
        if drawn[j][0] == depth - 1:
            return drawn[j][1]
        check(drawn[j][0] >= depth, "node tree: line %d jumps more than one level" % i)
    return None


def check_tree(c, port, root, what, problems):
    """Each node of GET /v1/nodes is drawn once under each parent the API gives it
    (its children lists), indented one level under it; the root at level 0."""
    lst = api_get(port, "/v1/nodes")
    drawn = parse_tree(c.out("node", "tree"))
    check(drawn and drawn[0][:3] == (0, root, "device"),
          "%s: node tree does not start with the root: %r" % (what, drawn[:1]))
    types = {n["id"]: n["type"] for n in lst}
    want = set()
    for n in lst:
        for ch in api_get(port, "/v1/nodes/%s/children" % n["id"]):
            want.add((n["id"], ch["id"]))
    got = set()
    for i, (depth, nid, typ, rest) in enumerate(drawn):
        check(types.get(nid) == typ, "%s: node tree draws %s (%s), the API has type %r"
              % (what, nid, typ, types.get(nid)))
        if i > 0:
            got.add((parent_in_tree(drawn, i), nid))
    check({nid for _, nid, _, _ in drawn} == set(types),
          "%s: node tree draws %s, the API lists %s"
          % (what, sorted({d[1] for d in drawn}), sorted(types)))
    missing, extra = want - got, got - want
    check(not extra, "%s: node tree draws edges the API does not have: %s"
          % (what, sorted(extra)))
    if missing:
        problems.append("%s: node tree does not draw %s (parent, node) although GET "
                        "/v1/nodes/PARENT/children lists them (its --help: \"A mirrored node "
                        "is drawn under each of its parents\")" % (what, sorted(missing)))
    return drawn


def test_tree_ops(c, port, root, gen, problems):
    lst = check_ls(c, port, "after node add")
    check(len(lst) == 8, "after 7 node adds GET /v1/nodes has %d nodes" % len(lst))
    sensors = c.json("node", "ls", "--type", "sensor")
    check(sorted(n["id"] for n in sensors) == sorted([gen, "t1", "t2", "t3"]),
          "node ls --type sensor --json: %r" % [n["id"] for n in sensors])
    drawn = check_tree(c, port, root, "the first tree", problems)
    levels = {nid: depth for depth, nid, _, _ in drawn}
    check(levels == {root: 0, "plant": 1, "line1": 2, "line2": 2, "t1": 3, "t2": 3,
                     "t3": 3, gen: 2},
          "node tree: levels %r do not show root > plant > line1/line2 > sensors" % levels)
    t1 = [rest for _, nid, _, rest in drawn if nid == "t1"][0]
    check(t1.startswith("  description = \"Boiler temp\"") and "value = 72.25" in t1,
          "node tree: t1's line does not show its description and value: %r" % t1)

    # mv
    out = c.out("node", "mv", "t2", "--from", "line1", "--to", "line2")
    check(out == "moved t2 from line1 to line2\n", "node mv printed %r" % out)
    check(api_get(port, "/v1/nodes/t2")["parent"] == "line2", "node mv: t2 is not under line2")
    check("t2" not in [n["id"] for n in api_get(port, "/v1/nodes/line1/children")],
          "node mv: t2 is still a child of line1")
    # mirror
    out = c.out("node", "mirror", "t1", "--to", "line2")
    check(out == "mirrored t1 under line2\n", "node mirror printed %r" % out)
    for p in ("line1", "line2"):
        check("t1" in [n["id"] for n in api_get(port, "/v1/nodes/%s/children" % p)],
              "node mirror: t1 is not a child of %s in the API" % p)
    r = c.run("node", "mirror", "t1", "--to", "line2", code=1)
    check("HTTP 409" in r.stderr, "mirroring onto a parent it has: stderr %r" % r.stderr)
    # rm
    out = c.out("node", "rm", "t3", "--parent", "line2")
    check(out == "removed t3 from line2\n", "node rm printed %r" % out)
    n = api_get(port, "/v1/nodes/t3")
    check(n.get("deleted") is True, "node rm: GET /v1/nodes/t3 is not deleted: %r" % n)
    lst = check_ls(c, port, "after mv, mirror, rm")
    check("t3" not in [n["id"] for n in lst], "node rm: t3 is still in GET /v1/nodes")
    check(not any(ln.split()[0] == "t3" for ln in c.out("node", "ls").splitlines()),
          "node rm: t3 is still a row of node ls")
    drawn = check_tree(c, port, root, "the tree after mv, mirror, rm", problems)
    check("t3" not in [d[1] for d in drawn], "node rm: node tree still draws t3")
    check(parent_in_tree(drawn, [d[1] for d in drawn].index("t2")) == "line2",
          "node mv: node tree does not draw t2 under line2")


def test_points(h, c, port, problems):
    # An exact value (17 significant digits) and its read-back.
    v = 73.20527140299478
    out = c.out("point", "set", "t1", "value", repr(v))
    check(out.startswith("t1: value = ") and float(out[len("t1: value = "):]) == v,
          "point set t1 value %r printed %r" % (v, out))
    p = point_of(api_get(port, "/v1/nodes/t1"), "value")
    check(p["text"] == "", "point set: the API has %r" % p)
    if p["value"] != v:
        problems.append("`sprig point set t1 value %r` printed %r but the daemon stored %r "
                        "(GET /v1/nodes/t1): the value is rounded on the way"
                        % (v, out.strip(), p["value"]))
    out = c.out("point", "set", "t2", "value", "0.30000000000000004")
    q = point_of(api_get(port, "/v1/nodes/t2"), "value")
    if q["value"] != 0.30000000000000004:
        problems.append("`sprig point set t2 value 0.30000000000000004` printed %r but the "
                        "daemon stored %r" % (out.strip(), q["value"]))
    out = c.out("node", "add", "--type", "sensor", "--parent", "line1", "--id", "t4",
                "--point", "value=0.30000000000000004")
    q = point_of(api_get(port, "/v1/nodes/t4"), "value")
    if q is None or q["value"] != 0.30000000000000004:
        problems.append("`sprig node add ... --point value=0.30000000000000004` stored %r"
                        % (q and q["value"]))
    v = p["value"]  # point get must show what is stored, exactly
    out = c.out("point", "get", "t1", "value")
    m = TIME_PREFIX.match(out.rstrip("\n"))
    check(m is not None and out.count("\n") == 1, "point get t1 value printed %r" % out)
    check(m.group(1) == p["time"], "point get: time %s, the API has %s"
          % (m.group(1), p["time"]))
    check(m.group(2).startswith("value = ") and float(m.group(2)[8:]) == v,
          "point get printed %r for the value %r (not exact)" % (m.group(2), v))
    got = c.json("point", "get", "t1", "value")
    check(got == [p], "point get --json %r differs from the API's point %r" % (got, p))

    # A text, and a key.
    out = c.out("point", "set", "t1", "label", "Boiler \"B\" room 2", "--text")
    check(out == "t1: label = \"Boiler \\\"B\\\" room 2\"\n", "point set --text printed %r"
          % out)
    p = point_of(api_get(port, "/v1/nodes/t1"), "label")
    check(p is not None and p["text"] == "Boiler \"B\" room 2" and p["value"] == 0,
          "point set --text: the API has %r" % p)
    out = c.out("point", "get", "t1", "label")
    check(out == "%s  label = \"Boiler \\\"B\\\" room 2\"\n" % p["time"],
          "point get t1 label printed %r" % out)
    out = c.out("point", "set", "t1", "value", "-12.5", "--key", "2")
    check(out == "t1: value[2] = -12.5\n", "point set --key 2 -12.5 printed %r" % out)
    p2 = point_of(api_get(port, "/v1/nodes/t1"), "value", "2")
    check(p2 is not None and p2["value"] == -12.5, "point set --key 2: the API has %r" % p2)
    out = c.out("point", "get", "t1", "value", "2")
    check(out == "%s  value[2] = -12.5\n" % p2["time"], "point get t1 value 2 printed %r" % out)
    check(point_of(api_get(port, "/v1/nodes/t1"), "value")["value"] == v,
          "point set --key 2 changed key 0")
    r = c.run("point", "get", "t1", "nosuch", code=1)
    check("nosuch" in r.stderr, "point get of a missing type: stderr %r" % r.stderr)

    before = api_get(port, "/v1/nodes/t1")
    # A value that is not a number: usage, exit 2, naming it; nothing is written.
    r = c.run("point", "set", "t1", "value", "abc", code=2)
    check("\"abc\"" in r.stderr and r.stdout == "",
          "point set of a bad value: stderr %r stdout %r" % (r.stderr, r.stdout))
    # A text over the server's limit: the server refuses, exit 1, its sentence printed.
    big = "x" * (64 * 1024 + 1)
    st, o = api(port, "POST", "/v1/nodes/t1/points", [{"type": "label", "text": big}])
    check(st == 400 and isinstance(o, dict) and o.get("error"),
          "the API accepted a text of %d bytes: %d %r" % (len(big), st, o))
    r = c.run("point", "set", "t1", "label", big, "--text", code=1)
    check(o["error"] in r.stderr and "HTTP 400" in r.stderr and r.stdout == "",
          "point set of an over-long text: stderr %r lacks the server's sentence %r"
          % (r.stderr[:400], o["error"]))
    check(api_get(port, "/v1/nodes/t1") == before, "refused point sets changed node t1")
    # An unknown node: the server's 404 sentence, exit 1.
    st, o = api(port, "POST", "/v1/nodes/nosuch/points", [{"type": "value", "value": 1}])
    check(st == 404 and o.get("error"), "the API wrote to an unknown node: %d %r" % (st, o))
    r = c.run("point", "set", "nosuch", "value", "1", code=1)
    check(r.stderr.strip() == "sprig point set: %s (HTTP 404)" % o["error"],
          "point set of an unknown node: stderr %r, expected the server's sentence %r"
          % (r.stderr, o["error"]))


def test_status(c, port):
    st = api_get(port, "/v1/status")
    out = c.out("status")
    fields = dict(ln.split(None, 1) for ln in out.splitlines() if len(ln.split(None, 1)) == 2)
    check(fields.get("hash") == st["hash"] and fields.get("root") == st["root"]
          and fields.get("version") == st["version"],
          "status shows root %r hash %r, GET /v1/status has %s %s:\n%s"
          % (fields.get("root"), fields.get("hash"), st["root"], st["hash"], out))
    js = c.json("status")
    check(js["hash"] == st["hash"] and js["root"] == st["root"],
          "status --json %r differs from GET /v1/status" % js)


def test_watch(h, c, port):
    w = h.start("watch", "--node", "line1", "--type", "value", "--url", c.url, name="watch")
    wj = h.start("watch", "--node", "line1", "--json", "--url", c.url, name="watch-json")
    # The stream has no "connected" line: write until a line shows up (bounded).
    seen = None
    for i in range(10):
        val = 100 + i + 0.5
        c.out("point", "set", "t1", "value", repr(val))
        try:
            w.wait_for(lambda ls: any(("value = %s" % repr(val)) in ln for ln in ls), 1.0,
                       "a line for t1 value %r" % val)
            seen = val
            break
        except TestFailure:
            check(w.alive(), "sprig watch exited early:\n%s" % w.stderr_tail())
    check(seen is not None, "sprig watch printed nothing for 10 point sets within 10 s:\n%s"
          % w.stderr_tail())
    # The second watcher may connect later than the first: the same, bounded.
    for i in range(10):
        if any('"node":"t1"' in ln for ln in wj.lines()):
            break
        c.out("point", "set", "t1", "value", repr(200 + i + 0.5))
        try:
            wj.wait_for(lambda ls: any('"node":"t1"' in ln for ln in ls), 1.0,
                        "sprig watch --json: an event of t1")
        except TestFailure:
            check(wj.alive(), "sprig watch --json exited early:\n%s" % wj.stderr_tail())
    check(any('"node":"t1"' in ln for ln in wj.lines()),
          "sprig watch --json printed nothing for 10 point sets within 10 s:\n%s"
          % wj.stderr_tail())
    # Other types and nodes outside line1's subtree are not printed; then one more value.
    c.out("point", "set", "t1", "other", "5")
    c.out("point", "set", "plant", "value", "6.25")
    c.out("point", "set", "t2", "value", "7.25")  # moved to line2: outside
    c.out("point", "set", "t1", "value", "42.125")
    p = point_of(api_get(port, "/v1/nodes/t1"), "value")
    want = "%sZ  %-16s value = 42.125" % (p["time"][:23], "t1")
    w.wait_for(lambda ls: want in ls, 5, "the line %r" % want)
    lines = w.lines()
    bad = [ln for ln in lines if "other" in ln or "plant" in ln or "t2" in ln]
    check(not bad, "watch --node line1 --type value printed other changes: %r" % bad)
    wj.wait_for(lambda ls: any('"value":42.125' in ln for ln in ls), 5,
                "sprig watch --json: the event of value 42.125")
    ev = [json.loads(ln) for ln in wj.lines() if '"value":42.125' in ln][0]
    check(ev == {"node": "t1", "points": [p]}, "watch --json printed %r, the API's point is %r"
          % (ev, p))
    for proc in (w, wj):
        t0 = time.monotonic()
        rc = proc.stop(signal.SIGINT, timeout=5)
        check(rc == 0, "%s: SIGINT made it exit %d, expected 0\n%s"
              % (proc.name, rc, proc.stderr_tail()))
        check(time.monotonic() - t0 < 3, "%s took %.1f s to stop on SIGINT"
              % (proc.name, time.monotonic() - t0))


def test_export_import(h, c, port, root):
    # More shape: a deep chain, root points, a deleted node with a child, texts.
    parent = "line2"
    for i in range(4):
        c.out("node", "add", "--type", "group", "--parent", parent, "--id", "lvl%d" % i,
              "--point", "description=level %d \u00e9" % i, "--point", "value=%r" % (i / 3))
        parent = "lvl%d" % i
    c.out("node", "mirror", "lvl3", "--to", "plant")
    c.out("node", "rm", "lvl2", "--parent", "lvl1")
    c.out("point", "set", root, "description", "the root", "--text")
    st1 = c.json("status")
    path = h.path("tree.json")
    with open(path, "wb") as f:
        try:
            r = subprocess.run([h.sprig, "export", "--url", c.url], cwd=h.dir,
                               stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE,
                               timeout=20)
        except subprocess.TimeoutExpired:
            raise TestFailure("sprig export did not finish within 20 s")
    check(r.returncode == 0 and r.stderr == b"", "sprig export > %s: exit %d, stderr %r"
          % (path, r.returncode, r.stderr))
    with open(path, "rb") as f:
        exp = json.loads(f.read().decode("utf-8"))
    check(exp == api_get(port, "/v1/export"), "sprig export differs from GET /v1/export")
    check(exp["hash"] == st1["hash"], "export hash %s, status %s" % (exp["hash"], st1["hash"]))

    d2 = Daemon(h, h.path("import.db"), *SCHEMA_ARGS, name="import")
    c2 = Cli(h, d2.port)
    check(c2.json("status")["nodes"] == 1, "the second daemon is not fresh")
    npts = sum(len(n["points"]) for n in exp["nodes"]) + sum(len(e["points"])
                                                             for e in exp["edges"])
    out = c2.out("import", "tree.json")
    check(out == "imported tree.json: %d nodes, %d points merged\n" % (len(exp["nodes"]), npts),
          "sprig import printed %r (the export has %d nodes, %d points)"
          % (out, len(exp["nodes"]), npts))
    st2 = c2.json("status")
    check(st2["hash"] == st1["hash"] and st2["hash"] != "0" * 16,
          "root hash after sprig import %s, exported %s" % (st2["hash"], st1["hash"]))
    check(st2["nodes"] == st1["nodes"] and st2["points"] == st1["points"],
          "after import %d nodes %d points, exported %d nodes %d points"
          % (st2["nodes"], st2["points"], st1["nodes"], st1["points"]))
    check(api_get(d2.port, "/v1/nodes/lvl2").get("deleted") is True,
          "the deleted node lvl2 is not deleted after import")
    check("lvl3" in [n["id"] for n in api_get(d2.port, "/v1/nodes/plant/children")],
          "the mirror plant -> lvl3 is not there after import")
    c2.out("import", "tree.json")
    check(c2.json("status")["hash"] == st1["hash"], "a second sprig import changed the hash")
    r = c2.run("import", "no-such-file.json", code=2)
    check("no-such-file.json" in r.stderr, "import of a missing file: stderr %r" % r.stderr)
    d2.stop()


def test_token(h):
    tok, path = write_token(h, "cli-token")
    d = Daemon(h, h.path("token.db"), name="token", token_file=path, token=tok)
    c = Cli(h, d.port)
    for args in (["status"], ["node", "ls"], ["point", "set", "x", "value", "1"], ["watch"]):
        r = c.run(*args, code=1)
        check("HTTP 401" in r.stderr and "--token-file" in r.stderr and r.stdout == "",
              "sprig %s without --token-file against a token daemon: stderr %r"
              % (" ".join(args), r.stderr))
    ct = Cli(h, d.port, token_file=path)
    st = api_get(d.port, "/v1/status", token=tok)
    check(ct.json("status")["hash"] == st["hash"], "status --token-file: hash differs")
    out = ct.out("node", "add", "--type", "group", "--parent", st["root"], "--id", "tg")
    check(out == "tg\n", "node add --token-file printed %r" % out)
    check(api_get(d.port, "/v1/nodes/tg", token=tok)["parent"] == st["root"],
          "node add --token-file: tg is not in the API")
    d.stop()


def test_unreachable(h):
    url = "http://127.0.0.1:%d" % free_port()
    for args in (["status"], ["node", "ls"], ["point", "set", "t1", "value", "1"], ["watch"]):
        r = h.run(*(args + ["--url", url]), timeout=20)
        check(r.returncode == 1 and url in r.stderr,
              "sprig %s --url %s (nothing listens): exit %d, stderr %r"
              % (" ".join(args), url, r.returncode, r.stderr))


def test():
    problems = []
    with Harness("cli-api") as h:
        test_help(h)
        print("help: ok")
        d = Daemon(h, h.path("cli.db"), *SCHEMA_ARGS, name="api")
        root = api_get(d.port, "/v1/status")["root"]
        c = Cli(h, d.port)
        gen = test_add_get(c, d.port, root)
        print("node add/get: ok")
        test_tree_ops(c, d.port, root, gen, problems)
        print("node ls/tree/mv/mirror/rm: %s" % ("ok" if not problems else
                                                  "%d problems" % len(problems)))
        n = len(problems)
        test_points(h, c, d.port, problems)
        print("point set/get: %s" % ("ok" if len(problems) == n else
                                       "%d problems" % (len(problems) - n)))
        test_status(c, d.port)
        print("status: ok")
        test_watch(h, c, d.port)
        print("watch: ok")
        test_export_import(h, c, d.port, root)
        print("export/import: ok")
        test_token(h)
        print("token: ok")
        test_unreachable(h)
        print("unreachable --url: ok")
        d.stop()
        h.verify(d.db, expect=0)
    check(not problems, "the CLI does not do what its help says:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main(test)
