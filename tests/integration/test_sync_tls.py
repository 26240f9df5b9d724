"""Sync over MQTT with TLS and credentials (DESIGN.md section 5, "Security"; README "Sync:
gateways and the cloud"), with a real mosquitto (broker.py) and real `sprig run` processes.
A gateway is a daemon with a `sync` node made through POST /v1/nodes; convergence means the
gateway's GET /v1/status "hash" equals the upstream's GET /v1/nodes/{gateway root} "hash".

It proves:
  a) TLS with client certificates: on a broker that requires a client certificate signed
     by its CA, an upstream (--sync-ca/--sync-cert/--sync-key) and a gateway (caFile,
     certFile, keyFile on its sync node) converge: equal hashes, the gateway's nodes on the
     upstream, the sync node "insync" with an empty error;
  b) refused TLS: a gateway whose client certificate is signed by the wrong CA, and one
     that trusts the wrong CA (so it refuses the broker's certificate), each reach state
     "error" with an error that names TLS (bounded wait), and never appear upstream
     (GET /v1/nodes/{its root} stays 404 over several reconnection attempts, and the
     upstream never logs that it joined);
  c) passwords: on a broker with allow_anonymous false, an upstream (--sync-user,
     --sync-password-file) and a gateway (username, passwordFile: a file this test writes)
     converge; a gateway with a wrong password reaches state "error" with an error that
     says the broker refused the connection, logs that it was not authorised, and never
     appears upstream; no
     password text is in any gateway's GET /v1/export, in the upstream's export (which
     holds the good gateway's tree, its sync node included), in any SQLite file (with its
     -wal) or in any daemon's log.
Every daemon is stopped by pid (SIGTERM, exit 0) and `sprig store verify` passes on every
store; every wait is bounded.
"""
import os
import re
import secrets
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from broker import UPSTREAM_USER, Broker  # noqa: E402
from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402

CONVERGE_MAX = 30.0  # s
ERROR_MAX = 15.0     # s for a refused link to say so
NEVER_WAIT = 4.0     # s a refused gateway is watched after its error (backoff 250 ms..5 s)
PERIOD = 2           # s between two probes
STATUS_POINTS = ("state", "error", "syncCount", "repairCount", "bytesUp", "bytesDown")


# --- helpers (the style of test_sync.py) ------------------------------------------------------


def node(d, nid):
    return d.node(nid)


def link_state(d, link):
    """The sync node's status points {name: text or value} (None when absent)."""
    n = node(d, link)
    check(n is not None, "%s: the sync node %s is gone" % (d.name, link))
    out = dict.fromkeys(STATUS_POINTS)
    for p in n["points"]:
        if p["type"] in out and p["key"] == "0" and not p["tombstone"]:
            out[p["type"]] = p["text"] if p["type"] in ("state", "error") else p["value"]
    return out


def equal(gw, up, root):
    """The gateway's root hash (read before and after) equals the upstream's copy."""
    g1 = gw.status()["hash"]
    n = node(up, root)
    g2 = gw.status()["hash"]
    return n is not None and n["hash"] in (g1, g2)


def populate(d, root, prefix, n=20):
    """A group under the root with n leaves, each with two points."""
    d.expect(201, "POST", "/v1/nodes", {"type": "group", "parent": root, "id": prefix + "-grp",
                                        "points": [{"type": "description",
                                                    "text": "group of " + prefix}]})
    for i in range(n):
        d.expect(201, "POST", "/v1/nodes", {
            "type": "group", "parent": prefix + "-grp", "id": "%s-n%02d" % (prefix, i),
            "points": [{"type": "value", "value": i * 1.5},
                       {"type": "serial", "text": "%s-SN%04d" % (prefix, i)}]})


def make_link(d, root, link, uri, **pts):
    points = [{"type": "uri", "text": uri}, {"type": "period", "value": PERIOD}]
    points += [{"type": k, "text": v} for k, v in sorted(pts.items())]
    d.expect(201, "POST", "/v1/nodes", {"type": "sync", "parent": root, "id": link,
                                        "points": points})



def until(fn, timeout, describe, every=0.05):
    return wait_until(describe, fn, timeout, every)


def in_state(gw, link, want):
    s = link_state(gw, link)
    return s if s["state"] == want else None


def converge(what, gw, up, root, link):
    t0 = time.monotonic()
    until(lambda: equal(gw, up, root), CONVERGE_MAX,
          lambda: "%s: gateway %s's hash equals the upstream's copy (gateway %s, upstream %r, "
          "sync node %r)\nupstream stderr tail:\n%s\ngateway stderr tail:\n%s"
          % (what, root, gw.status()["hash"], (node(up, root) or {}).get("hash"),
             link_state(gw, link), up.proc.stderr_tail(), gw.proc.stderr_tail()))
    took = time.monotonic() - t0
    st = until(lambda: in_state(gw, link, "insync"), CONVERGE_MAX,
               lambda: "%s: the sync node %s reaches insync (%r)"
               % (what, link, link_state(gw, link)), every=0.1)
    check(st["error"] == "", "%s: insync with a non-empty error %r" % (what, st["error"]))
    print("%s: converged in %.2f s; sync node %r" % (what, took, st))
    return st


def refused(what, gw, up, root, link, error_re):
    """The link reaches state error with an error matching error_re, and the gateway never
    shows up on the upstream. Returns the error text."""
    t0 = time.monotonic()
    st = until(lambda: in_state(gw, link, "error"), ERROR_MAX,
               lambda: "%s: the sync node %s reaches state error (%r)\ngateway stderr tail:\n%s"
               % (what, link, link_state(gw, link), gw.proc.stderr_tail()), every=0.1)
    took = time.monotonic() - t0
    err = st["error"] or ""
    check(err.strip() != "", "%s: state error with an empty error point: %r" % (what, st))
    check(re.search(error_re, err, re.I), "%s: the error %r does not match /%s/"
          % (what, err, error_re))
    print("%s: state error after %.2f s: %r" % (what, took, err))
    end = time.monotonic() + NEVER_WAIT
    while time.monotonic() < end:
        check(node(up, root) is None, "%s: the refused gateway %s appeared upstream: %r"
              % (what, root, node(up, root)))
        s = link_state(gw, link)
        check(s["state"] in ("error", "connecting"), "%s: the refused link went to %r"
              % (what, s))
        time.sleep(0.25)
    s = link_state(gw, link)
    check(s["state"] == "error" and re.search(error_re, s["error"] or "", re.I),
          "%s: after %.0f s more the link is %r" % (what, NEVER_WAIT, s))
    check(s["syncCount"] in (None, 0), "%s: a refused link counts matched probes: %r"
          % (what, s))
    log = up.proc.stderr()
    check(root not in log, "%s: the upstream's log names the refused device %s:\n%s"
          % (what, root, "\n".join(ln for ln in log.splitlines() if root in ln)[-800:]))
    return err


def gateway(h, name, prefix):
    d = Daemon(h, h.path(name + ".db"), "--rules", "off", name=name)
    root = d.status()["root"]
    populate(d, root, prefix)
    return d, root


# --- a) and b): TLS ---------------------------------------------------------------------------

def tls(h):
    b = Broker(h, tls=True, require_certificate=True)
    c = b.certs
    up = Daemon(h, h.path("up-tls.db"), "--rules", "off", "--serve-sync", "--sync-broker", b.uri,
                "--sync-ca", c.ca, "--sync-cert", c.client_cert, "--sync-key", c.client_key,
                name="upstream-tls")
    gw, root = gateway(h, "gw-tls", "tls")
    make_link(gw, root, "link-tls", b.uri, caFile=c.ca, certFile=c.client_cert,
              keyFile=c.client_key, deviceId="site-tls")  # not its root id
    converge("a) TLS with client certificates", gw, up, root, "link-tls")
    for nid in ("tls-grp", "tls-n00", "tls-n19"):
        a, u = node(gw, nid), node(up, nid)
        check(u is not None and a["hash"] == u["hash"],
              "a) TLS: node %s: gateway %r, upstream %r" % (nid, a, u))
    # Live change through the TLS link.
    gw.expect(200, "POST", "/v1/nodes/tls-n03/points", [{"type": "value", "value": 33.25}])
    wait_until("a) TLS: a live point reaches the upstream",
               lambda: any(p["type"] == "value" and p["value"] == 33.25
                           for p in (node(up, "tls-n03") or {"points": []})["points"]), 10)
    wait_until("a) TLS: hashes equal after a live point",
               lambda: equal(gw, up, root), 10)

    # b) The wrong CA, both ways round.
    bad, bad_root = gateway(h, "gw-wrong-cert", "wcert")
    make_link(bad, bad_root, "link-wrong-cert", b.uri, caFile=c.ca,
              certFile=c.wrong_client_cert, keyFile=c.wrong_client_key)
    trusting, trusting_root = gateway(h, "gw-wrong-ca", "wca")
    make_link(trusting, trusting_root, "link-wrong-ca", b.uri, caFile=c.wrong_ca,
              certFile=c.client_cert, keyFile=c.client_key)
    e2 = refused("b) a gateway trusting the wrong CA", trusting, up, trusting_root,
                 "link-wrong-ca", r"\bTLS\b")

    def wrong_cert():
        """The other refusal, checked last (test()), once the rest has run."""
        e1 = refused("b) a client certificate signed by the wrong CA", bad, up, bad_root,
                     "link-wrong-cert", r"\bTLS\b")
        # The good link is untouched by its neighbours' failures.
        check(link_state(gw, "link-tls")["state"] == "insync",
              "a) the good TLS link left insync: %r" % link_state(gw, "link-tls"))
        check(equal(gw, up, root), "a) the good TLS gateway's hashes differ at the end")
        return e1

    return [up, gw, bad, trusting], e2, wrong_cert


# --- c): passwords ----------------------------------------------------------------------------

def write_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def passwords(h):
    b = Broker(h, password=True)
    up = Daemon(h, h.path("up-pw.db"), "--rules", "off", "--serve-sync", "--sync-broker", b.uri,
                "--sync-user", UPSTREAM_USER, "--sync-password-file",
                b.password_file(UPSTREAM_USER), name="upstream-pw")
    good_pw = b.users["gateway"]
    wrong_pw = "wrong-" + secrets.token_hex(10)
    good_file = write_file(h.path("gateway.password"), good_pw + "\n")
    wrong_file = write_file(h.path("wrong.password"), wrong_pw)

    gw, root = gateway(h, "gw-pw", "pw")
    make_link(gw, root, "link-pw", b.uri, username="gateway", passwordFile=good_file,
              deviceId="site-pw")  # not its root id
    converge("c) a username and a passwordFile", gw, up, root, "link-pw")

    bad, bad_root = gateway(h, "gw-bad-pw", "badpw")
    make_link(bad, bad_root, "link-bad-pw", b.uri, username="gateway", passwordFile=wrong_file)
    # The error point says the broker refused the link (state error, where a broker that
    # cannot be reached leaves it "connecting"); the log says why (the CONNACK's reason).
    err = refused("c) a wrong password", bad, up, bad_root, "link-bad-pw",
                  r"refused the connection")
    why = [ln for ln in bad.proc.stderr().splitlines()
           if "link-bad-pw" in ln and re.search(r"not authori[sz]ed|bad user ?name or password",
                                                ln, re.I)]
    check(why, "c) the gateway's log does not say the broker found it not authorised:\n%s"
          % bad.proc.stderr_tail())
    print("c) a wrong password: the gateway's log: %s" % why[0])

    # The password is read from the file, never stored: not in the tree (export), not in
    # the SQLite files, not in the logs.
    secrets_ = {"the gateway's password": good_pw, "the wrong password": wrong_pw,
                "the upstream's password": b.users[UPSTREAM_USER]}
    for d in (gw, bad, up):
        r = d.get("/v1/export")
        check(r.status == 200, "%s: GET /v1/export: %r" % (d.name, r))
        text = r.text()
        for what, pw in secrets_.items():
            check(pw not in text, "%s: GET /v1/export contains %s" % (d.name, what))
    # The upstream holds the good gateway's sync node, with the file's name only.
    up_link = node(up, "link-pw")
    check(up_link is not None and any(p["type"] == "passwordFile" and p["text"] == good_file
                                      for p in up_link["points"]),
          "c) the upstream's copy of the sync node lacks its passwordFile: %r" % up_link)
    print("c) no password in the exports of %s" % ", ".join(d.name for d in (gw, bad, up)))
    return [up, gw, bad], err, secrets_


def no_secret_on_disk(h, daemons, secrets_):
    for d in daemons:
        for path in (d.db, d.db + "-wal", d.proc.err_path):
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            for what, pw in secrets_.items():
                check(pw.encode() not in data, "%s holds %s" % (path, what))
    print("c) no password in any SQLite file, -wal or log")


def test():
    with Harness("sync-tls") as h:
        tls_daemons, e2, wrong_cert = tls(h)
        pw_daemons, e3, secrets_ = passwords(h)
        e1 = wrong_cert()
        for d, link in ((tls_daemons[1], "link-tls"), (pw_daemons[1], "link-pw")):
            print("%s: %r" % (d.name, link_state(d, link)))
        everyone = tls_daemons + pw_daemons
        for d in everyone:
            d.stop()
        no_secret_on_disk(h, everyone, secrets_)
        for d in everyone:
            h.verify(d.db, expect=0)
        print("errors: wrong client CA %r; wrong server CA %r; wrong password %r" % (e1, e2, e3))


if __name__ == "__main__":
    main(test)
