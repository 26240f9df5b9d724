"""Acceptance (issue 15, item 9): a site's export, however large, imports whole or not at all.

A generated export of 100,000 nodes (about 50 MB: groups 50 to a parent, each with a text
and two numbers, each edge with its point) goes through `sprig import FILE --progress`
into an empty daemon A; `sprig export` of A goes through POST /v1/import into an empty
daemon B. Each side then has the same node count and the same root hash as the document
it took, and A's export equals B's. Then B gets the same 100,000 nodes again under new ids
with one bad node at the very end (a time beyond the drift limit, which only the write
path finds, after the 100,000 others are applied): the answer is 400 naming that node,
and B's tree, hash, counts and export are exactly as before. A body over --import-max is
refused with 413 naming the flag, and the other routes keep their 1 MiB limit.
Printed: the seconds each import took, the time the daemon's loop spent on it (its log),
and each daemon's peak RSS (VmHWM).
"""
import json
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import check, main, Harness
from test_api import Daemon

N = 100000
FANOUT = 50
T0 = "2026-01-01T00:00:00.%09dZ"
IMPORT_LOG = re.compile(r"api: import of (\d+) bytes: parsed in (\d+) ms, (applied|refused) "
                        r"in (\d+) ms")


def generate(root, prefix, n):
    """An export of n groups under root: node i hangs under node (i-1)//FANOUT (0: root)."""
    nodes = [{"id": root, "type": "device", "points": []}]
    edges = []
    for i in range(1, n + 1):
        nid = "%s%d" % (prefix, i)
        up = root if i <= FANOUT else "%s%d" % (prefix, (i - 1) // FANOUT)
        t = T0 % i
        nodes.append({"id": nid, "type": "group", "points": [
            {"type": "description", "key": "0", "time": t, "value": 0,
             "text": "machine %d of line %d" % (i, (i - 1) // FANOUT), "tombstone": 0,
             "origin": ""},
            {"type": "temperature", "key": "0", "time": t, "value": 20 + i % 17 * 0.25,
             "text": "", "tombstone": 0, "origin": ""},
            {"type": "setpoint", "key": "0", "time": t, "value": i % 90, "text": "",
             "tombstone": 0, "origin": ""}]})
        edges.append({"up": up, "down": nid, "points": [
            {"type": "tombstone", "key": "0", "time": t, "value": 0, "text": "",
             "tombstone": 0, "origin": ""}]})
    return {"root": root, "nodes": nodes, "edges": edges}


def peak_rss_kb(d):
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def rss_kb(d):
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def loop_ms(d):
    """The last import's parse and apply times, from the daemon's log."""
    m = IMPORT_LOG.findall(d.proc.stderr())
    check(m, "%s logged no import: %s" % (d.name, d.proc.stderr_tail()))
    return int(m[-1][1]), int(m[-1][3]), m[-1][2]


def state(d):
    st = d.status()
    exp = d.expect(200, "GET", "/v1/export", timeout=120)
    return {"hash": st["hash"], "nodes": st["nodes"], "points": st["points"], "export": exp}


def test():
    with Harness("import_large") as h:
        a = Daemon(h, h.path("a.db"), "--log-level", "info", name="a")
        doc = generate("site-7", "m", N)
        text = json.dumps(doc, separators=(",", ":"))
        del doc
        path = h.path("site.json")
        with open(path, "w") as f:
            f.write(text)
        mb = len(text) / 1e6
        check(len(text) > 40e6, "the document is only %.1f MB" % mb)

        # The CLI, as a person moving a site would run it.
        t = time.monotonic()
        r = h.run("import", path, "--progress", "--url", "http://127.0.0.1:%d" % a.port,
                  timeout=240)
        secs_a = time.monotonic() - t
        check(r.returncode == 0, "sprig import of %.1f MB: exit %d\n%s"
              % (mb, r.returncode, r.stderr[-2000:]))
        check("imported %s: %d nodes" % (path, N + 1) in r.stdout, "sprig import: %r" % r.stdout)
        check("(100%)" in r.stderr and "MiB" in r.stderr,
              "sprig import --progress showed no progress: %r" % r.stderr[-500:])
        parse_a, apply_a, _ = loop_ms(a)
        rss_a = peak_rss_kb(a)  # before any export, which builds its own document
        sa = state(a)
        check(sa["nodes"] == N + 1, "A holds %d nodes, not %d" % (sa["nodes"], N + 1))
        check(sa["points"] == 3 * N, "A holds %d points, not %d" % (sa["points"], 3 * N))
        check(len(sa["export"]["nodes"]) == N + 1 and len(sa["export"]["edges"]) == N,
              "A's export lists %d nodes and %d edges" % (len(sa["export"]["nodes"]),
                                                         len(sa["export"]["edges"])))
        check(sa["export"]["hash"] == sa["hash"], "A's export hash %s, status %s"
              % (sa["export"]["hash"], sa["hash"]))

        # A's export, through the API, into another empty daemon.
        b = Daemon(h, h.path("b.db"), "--log-level", "info", name="b")
        body = json.dumps(sa["export"]).encode()
        # Meanwhile a client polls GET /v1/status: how long does it wait at worst?
        waits, done = [], threading.Event()

        def poll():
            while not done.is_set() and len(waits) < 10000:
                t1 = time.monotonic()
                r = b.get("/v1/status", timeout=60)
                waits.append((time.monotonic() - t1, r.status))
                time.sleep(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t = time.monotonic()
        o = b.expect(200, "POST", "/v1/import", body, timeout=240)
        secs_b = time.monotonic() - t
        done.set()
        poller.join(70)
        check(waits and all(st == 200 for _, st in waits),
              "GET /v1/status during the import: %r" % waits[:5])
        check(o["nodes"] == N + 1, "B's import answer: %r" % o)
        parse_b, apply_b, _ = loop_ms(b)
        rss_b = peak_rss_kb(b)
        sb = state(b)
        check(sb["hash"] == sa["hash"] and sb["nodes"] == sa["nodes"] and
              sb["points"] == sa["points"],
              "B has hash %s, %d nodes, %d points; A has %s, %d, %d"
              % (sb["hash"], sb["nodes"], sb["points"], sa["hash"], sa["nodes"], sa["points"]))

        def canon(e):  # the root's id is each daemon's own
            r = e["root"]
            edges = [dict(x, up="ROOT" if x["up"] == r else x["up"]) for x in e["edges"]]
            # A parent lists its children newest first, so each export turns that order.
            return (e["nodes"][1:], sorted(edges, key=lambda x: (x["up"], x["down"])))

        ca, cb = canon(sa["export"]), canon(sb["export"])
        diff = [(x, y) for x, y in zip(ca[0] + ca[1], cb[0] + cb[1]) if x != y][:1]
        check(ca == cb, "B's export differs from A's: %.600r" % (diff,))
        rss_a_exp, now_a = peak_rss_kb(a), rss_kb(a)

        # The same again under new ids, with one bad node at the end: nothing changes.
        bad = generate("site-7", "n", N)
        bad["nodes"].append({"id": "last", "type": "group", "points": [
            {"type": "description", "text": "from the future", "time": "2200-01-01T00:00:00Z"}]})
        bad["edges"].append({"up": "n1", "down": "last"})
        body = json.dumps(bad).encode()
        del bad
        t = time.monotonic()
        o = b.expect(400, "POST", "/v1/import", body, timeout=240)
        secs_bad = time.monotonic() - t
        for w in ("nodes[%d].points" % (N + 1), "drift", "description"):
            check(w in o["error"], "the refusal does not name %r: %r" % (w, o["error"]))
        parse_bad, apply_bad, verdict = loop_ms(b)
        check(verdict == "refused", "B's log says the import was %s" % verdict)
        after = state(b)
        for k in after:
            check(after[k] == sb[k], "a refused import changed B's %s" % k)
        check(b.node("n1") is None and b.node("last") is None, "a refused node exists")

        # Over the limits: --import-max for imports, 1 MiB for every other route.
        c = Daemon(h, h.path("c.db"), "--import-max", "1048576", name="c")
        o = c.expect(413, "POST", "/v1/import", body[:2 << 20])
        check("--import-max" in o["error"] and "1048576" in o["error"],
              "413 without the limit and its flag: %r" % o["error"])
        root = c.status()["root"]
        o = c.expect(413, "POST", "/v1/nodes", {"type": "group", "parent": root,
                                                "points": [{"type": "description",
                                                            "text": "z" * (1 << 20)}]})
        check("/v1/import" in o["error"], "a big write's 413 does not point to the import: %r"
              % o["error"])
        check(c.status()["nodes"] == 1, "the refused bodies changed C")

        print("import of %.1f MB, %d nodes: sprig import into A %.1f s (loop: parse %d ms, "
              "apply %d ms), POST /v1/import into B %.1f s (parse %d ms, apply %d ms)"
              % (mb, N + 1, secs_a, parse_a, apply_a, secs_b, parse_b, apply_b))
        print("GET /v1/status every 20 ms during B's import: %d answers, longest wait %.0f ms"
              % (len(waits), 1000 * max(w for w, _ in waits)))
        print("refused import with a bad last node: %.1f s (parse %d ms, refused after %d ms)"
              % (secs_bad, parse_bad, apply_bad))
        print("peak RSS over the import: A %d kB, B %d kB; A's after two exports %d kB (RSS "
              "now %d kB); B's after the refused import %d kB"
              % (rss_a, rss_b, rss_a_exp, now_a, peak_rss_kb(b)))
        for d in (a, b, c):
            d.stop()


if __name__ == "__main__":
    main(test)
