"""Acceptance: `sprig sync status` and the "sync" array of GET /v1/status, against
`sprig run --rules off` with no broker anywhere:
  - with no sync node, `sync status` prints "no sync nodes; this instance syncs to no
    upstream" and exits 0; /v1/status has "sync": [] and every field it had before;
  - a sync node whose uri is mqtt://127.0.0.1:PORT with nobody listening on PORT: once its
    driver reports (bounded wait), `sync status` shows one block for it with the uri,
    state "connecting", lastSync "never" and whole-number counters; /v1/status lists it
    with the same uri and state, lastSync null, an error string and numeric counters;
  - a sync node with a malformed uri ("http://x"): the daemon logs that its driver did
    not start, and `sync status` still lists it, state "error" with the reason naming
    the uri, lastSync "never", counters "-"; /v1/status lists it the same way;
  - a sync node inside another device's tree (a node of type device under the root, as
    an upstream keeps a device's tree) is data, not a link of this instance: neither
    `sync status` nor /v1/status lists it, and `sync status` counts it on its last line;
  - --json prints this instance's sync nodes (sorted by id) as GET /v1/nodes gives them;
  - a deleted sync node leaves both;
  - a bad flag exits 2 naming it, as does an unknown subcommand; `sprig sync --help`,
    `sprig sync status --help` and `sprig --help` describe the command.
Libraries: with no sync node the daemon has not loaded libmosquitto (nor the OpenSSL it
links), and on a SQLite store not libpq either; the first sync node loads libmosquitto.
The daemon is stopped by pid (SIGTERM, exit 0); every wait is bounded.
"""
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, free_port, main, wait_until  # noqa: E402
from test_api import Daemon, check_status_shape  # noqa: E402

NO_SYNC = "no sync nodes; this instance syncs to no upstream"
FIELD = re.compile(r"^  (\S+)\s+(.*)$")
COUNTERS = ("syncCount", "repairCount", "bytesUp", "bytesDown")




def mapped(pid, name):
    """Whether a file whose name starts with name is mapped into process pid."""
    with open("/proc/%d/maps" % pid) as f:
        return any(os.path.basename(ln.split()[-1]).startswith(name)
                   for ln in f if len(ln.split()) >= 6)


def parse_blocks(out):
    """`sync status` text as ({id: {label: value}}, trailing note lines). A block is
    "sync ID" then "  label  value" lines; blocks are separated by one blank line."""
    blocks, notes, cur = {}, [], None
    for ln in out.splitlines():
        if ln.startswith("sync "):
            cur = blocks.setdefault(ln[5:], {})
            continue
        m = FIELD.match(ln)
        if m and cur is not None:
            cur[m.group(1)] = m.group(2)
        elif ln == "":
            cur = None
        else:
            notes.append(ln)
    return blocks, notes


def test():
    with Harness("sync_status") as h:
        d = Daemon(h, h.path("sprig.db"), "--rules", "off")
        root = d.status()["root"]

        def cli(*args, code=0):
            return d.cli("sync", *args, code=code)

        def status_sync():
            st = d.status()
            check_status_shape(st, "with sync nodes")
            check(isinstance(st.get("sync"), list), "/v1/status has no \"sync\" array: %r" % st)
            return {s["id"]: s for s in st["sync"]}

        # No sync node.
        st = d.status()
        check_status_shape(st, "no sync node")
        check(st.get("sync") == [], "/v1/status with no sync node: \"sync\" is %r, expected []"
              % st.get("sync"))
        r = cli("status")
        check(r.stdout.strip() == NO_SYNC and r.stderr == "",
              "sync status with no sync node printed %r (stderr %r), expected %r"
              % (r.stdout, r.stderr, NO_SYNC))
        for lib in ("libmosquitto", "libssl", "libcrypto", "libpq"):
            check(not mapped(d.proc.pid, lib), "with no sync node the daemon has %s loaded" % lib)

        # A link to a port nobody listens on: connecting.
        uri = "mqtt://127.0.0.1:%d" % free_port()
        d.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root, "id": "link-a",
                                            "points": [{"type": "uri", "text": uri},
                                                       {"type": "deviceId", "text": "site-a"}]})
        wait_until("sync status shows link-a connecting",
                   lambda: parse_blocks(cli("status").stdout)[0].get("link-a", {})
                   .get("state") == "connecting", 15)
        out = cli("status").stdout
        blocks, notes = parse_blocks(out)
        a = blocks["link-a"]
        check(list(blocks) == ["link-a"] and notes == [],
              "sync status lists %r with notes %r, expected link-a alone:\n%s"
              % (list(blocks), notes, out))
        check(a.get("uri") == uri and a.get("lastSync") == "never",
              "sync status: link-a's block is %r, expected uri %s and lastSync never" % (a, uri))
        check(all(re.fullmatch(r"\d+", a.get(c, "")) for c in COUNTERS),
              "sync status: link-a's counters are not whole numbers: %r" % a)
        check(all(len(ln) <= 100 for ln in out.splitlines()),
              "sync status: a line over 100 columns:\n%s" % out)
        s = status_sync()
        check(set(s) == {"link-a"}, "/v1/status sync ids %r, expected link-a" % list(s))
        sa = s["link-a"]
        check(sa.get("uri") == uri and sa.get("state") == "connecting" and
              "lastSync" in sa and sa["lastSync"] is None and isinstance(sa.get("error"), str),
              "/v1/status sync entry for link-a: %r" % sa)
        check(all(isinstance(sa.get(c), (int, float)) and sa[c] >= 0 for c in COUNTERS),
              "/v1/status sync entry for link-a lacks a counter: %r" % sa)
        print("link-a: %r" % sa)
        check(mapped(d.proc.pid, "libmosquitto"),
              "a sync link runs but libmosquitto is not loaded")

        # A malformed uri: the driver does not start; the node is still listed.
        d.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root, "id": "link-bad",
                                            "points": [{"type": "uri", "text": "http://x"}]})
        wait_until("the daemon logs that link-bad's driver did not start",
                   lambda: re.search(r"node link-bad not started", d.proc.stderr()), 10)
        out = cli("status").stdout
        blocks, notes = parse_blocks(out)
        check(list(blocks) == ["link-a", "link-bad"],
              "sync status lists %r, expected link-a then link-bad:\n%s" % (list(blocks), out))
        b = blocks["link-bad"]
        check(b.get("uri") == "http://x" and b.get("state") == "error" and
              'uri "http://x" must start with mqtt://' in b.get("error", "") and
              b.get("lastSync") == "never" and all(b.get(c) == "-" for c in COUNTERS),
              "sync status: link-bad's block is %r, expected uri http://x, state error naming "
              "the uri and the rule, lastSync never and counters -" % b)
        sb = status_sync().get("link-bad")
        check(sb is not None and sb["uri"] == "http://x" and sb["state"] == "error" and
              "http://x" in sb["error"] and sb["lastSync"] is None,
              "/v1/status sync entry for link-bad: %r, expected uri http://x, state error "
              "naming the uri, lastSync null" % sb)

        # A sync node in another device's tree kept here: data, not a link of ours.
        d.expect(201, "POST", "/v1/nodes", {"type": "device", "parent": root, "id": "dev-2"})
        d.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": "dev-2", "id": "dev-2-link",
                                            "points": [{"type": "uri", "text": uri}]})
        out = cli("status").stdout
        blocks, notes = parse_blocks(out)
        check(list(blocks) == ["link-a", "link-bad"] and len(notes) == 1 and
              notes[0].startswith("(not listed: 1 sync node in another device's tree"),
              "sync status with dev-2-link: lists %r, notes %r, expected link-a, link-bad and "
              "a note counting 1 node of another device:\n%s" % (list(blocks), notes, out))
        check(set(status_sync()) == {"link-a", "link-bad"},
              "/v1/status sync lists %r, expected link-a and link-bad only"
              % list(status_sync()))

        # --json: this instance's sync nodes as the API has them.
        j = json.loads(cli("status", "--json").stdout)
        check(isinstance(j, list) and [n["id"] for n in j] == ["link-a", "link-bad"] and
              all(n["type"] == "sync" and isinstance(n["points"], list) for n in j),
              "sync status --json: %r" % j)

        # A deleted sync node leaves both.
        d.expect(200, "DELETE", "/v1/nodes/link-bad?parent=" + root)
        blocks, _ = parse_blocks(cli("status").stdout)
        check(list(blocks) == ["link-a"], "sync status after deleting link-bad lists %r"
              % list(blocks))
        check(set(status_sync()) == {"link-a"}, "/v1/status sync after deleting link-bad: %r"
              % list(status_sync()))

        # Bad usage exits 2 and names what is wrong.
        r = cli("status", "--bogus", code=2)
        check("--bogus" in r.stderr and r.stdout == "",
              "sync status --bogus: stderr %r does not name the flag" % r.stderr)
        r = h.run("sync", "stats", timeout=10)
        check(r.returncode == 2 and '"stats"' in r.stderr,
              "sync stats: exit %d, stderr %r" % (r.returncode, r.stderr))

        # Help.
        for args, want in ((["sync", "--help"], r"^  status\b"), (["--help"], r"^  sync status\b")):
            r = h.run(*args, timeout=10)
            check(r.returncode == 0 and re.search(want, r.stdout, re.M),
                  "sprig %s: exit %d, does not list the status command:\n%s"
                  % (" ".join(args), r.returncode, r.stdout))
        r = h.run("sync", "status", "--help", timeout=10)
        check(r.returncode == 0 and r.stdout.startswith("usage: sprig sync status") and
              "--url" in r.stdout and "--json" in r.stdout,
              "sprig sync status --help: exit %d\n%s" % (r.returncode, r.stdout))

        d.stop()


if __name__ == "__main__":
    main(test)
