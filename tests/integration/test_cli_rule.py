"""Acceptance: `sprig rule ls|show|enable|disable`, the rule commands that talk to a
running daemon over its HTTP API, against `sprig run --demo --demo-rate 20 --rules DIR`
with DIR holding two rules on demo-temp's value:
  - good.lua writes demo-cooler `x` = the sample; bad.lua raises on line 2
    (`local t = nil; t.x = 1`) on every sample;
  - once runs are saved (once a second; bounded wait), `rule ls` lists both, one line
    each: good running, bad error, runs > 0 for both, the last run as RFC 3339, the file,
    and bad's error (first line, "bad.lua:2: ...") with no line over 120 columns;
  - `rule show bad` prints the whole error and the script with line numbers (line 2 is
    the failing statement);
  - `rule disable good` says so; `rule ls` says disabled; demo-cooler x stops changing
    while demo-temp samples on; `rule enable good` makes `rule ls` say running and x
    change again;
  - `rule show nope` exits 1 with `no rule "nope"`; `rule show demo-temp` exits 1 saying
    it is a signalGenerator, not a rule; an unreachable --url exits 1 with the message
    `node ls` prints for it (naming the URL);
  - `sprig rule --help` and `sprig --help` list ls, show, enable and disable.
The daemon is stopped by pid (SIGTERM, exit 0); every wait is bounded.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, free_port, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402

GOOD = ('on({node="demo-temp", point="value"}, function(ev)\n'
        '  set("demo-cooler", "x", ev.value)\n'
        'end)\n')
BAD = ('on({node="demo-temp", point="value"}, function(ev)\n'
       '  local t = nil; t.x = 1\n'
       'end)\n')
LS_LINE = re.compile(r"^(\S+)\s+(running|disabled|error)\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+(.*))?$")
RFC3339_S = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")




def point(d, node, ptype):
    """node's live point ptype (key "0") as the API has it, or None."""
    n = d.expect(200, "GET", "/v1/nodes/" + node)
    for p in n["points"]:
        if p["type"] == ptype and p["key"] == "0" and not p["tombstone"]:
            return p
    return None




def test():
    with Harness("cli_rule") as h:
        rules = h.path("rules")
        os.mkdir(rules)
        with open(os.path.join(rules, "good.lua"), "w") as f:
            f.write(GOOD)
        with open(os.path.join(rules, "bad.lua"), "w") as f:
            f.write(BAD)
        d = Daemon(h, h.path("sprig.db"), "--demo", "--demo-rate", "20", "--rules", rules)

        def cli(*args, code=0):
            return d.cli("rule", *args, code=code)

        def ls():
            """rule ls as {id: (state, runs, last run, file, error)}, every line checked."""
            out = cli("ls").stdout.splitlines()
            check(len(out) >= 1 and out[0].split()[:3] == ["ID", "STATE", "RUNS"],
                  "rule ls: the first line is not the header ID STATE RUNS ...: %r" % out[:1])
            rows = {}
            for ln in out[1:]:
                m = LS_LINE.match(ln)
                check(m is not None, "rule ls: line %r is not ID STATE RUNS LAST FILE [ERROR]"
                      % ln)
                check(len(ln) <= 120, "rule ls: line of %d columns, over 120: %r" % (len(ln), ln))
                rows[m.group(1)] = (m.group(2), int(m.group(3)), m.group(4), m.group(5),
                                    m.group(6) or "")
            return rows

        # Runs are saved once a second: wait until both rules show some.
        wait_until("rule ls shows runs > 0 for good and bad",
                   lambda: all(ls().get(r, ("", 0))[1] > 0 for r in ("good", "bad")), 15)
        rows = ls()
        check(set(rows) == {"good", "bad"}, "rule ls lists %r, expected good and bad" % rows)
        state, runs, last, file, err = rows["good"]
        check(state == "running" and file == "good.lua" and err == "" and RFC3339_S.match(last),
              "rule ls: good's row is %r, expected running, good.lua, an RFC 3339 last run "
              "and no error" % (rows["good"],))
        state, runs, last, file, err = rows["bad"]
        check(state == "error" and file == "bad.lua" and "bad.lua:2:" in err
              and RFC3339_S.match(last),
              "rule ls: bad's row is %r, expected error, bad.lua, an RFC 3339 last run and "
              "an error naming bad.lua:2:" % (rows["bad"],))
        api_err = point(d, "bad", "error")["text"]
        check(err == api_err.splitlines()[0] or (err.endswith("...") and
                                                 api_err.startswith(err[:-3])),
              "rule ls: bad's error %r is not the first line of the API's %r" % (err, api_err))

        # show: the whole error, the script with line numbers.
        out = cli("show", "bad").stdout
        check(api_err in out, "rule show bad does not print the error %r:\n%s" % (api_err, out))
        numbered = [ln.split(None, 1) for ln in out.splitlines()
                    if re.match(r"^\s+\d+\s", ln)]
        want = [[str(i + 1), s.strip()] for i, s in enumerate(BAD.splitlines())]
        check([[n, s.strip()] for n, s in numbered] == want,
              "rule show bad: the numbered script is %r, expected %r\n%s" % (numbered, want, out))
        check(re.search(r"^\s+2\s+local t = nil; t\.x = 1$", out, re.M),
              "rule show bad: no line '2  local t = nil; t.x = 1':\n%s" % out)

        # disable: ls says so, x stops while demo-temp goes on.
        out = cli("disable", "good").stdout
        check("good" in out and "disabled" in out, "rule disable good printed %r" % out)
        check(ls()["good"][0] == "disabled", "rule ls after disable: good is %r" % (ls()["good"],))
        time.sleep(0.3)  # samples already on their way
        x1, t1 = point(d, "demo-cooler", "x"), point(d, "demo-temp", "value")
        time.sleep(1.5)
        x2, t2 = point(d, "demo-cooler", "x"), point(d, "demo-temp", "value")
        check(t1["time"] != t2["time"], "demo-temp did not sample for 1.5 s: %r" % t2)
        check(x1 == x2, "demo-cooler x changed while good was disabled: %r -> %r" % (x1, x2))

        # enable: ls says running, x changes again.
        out = cli("enable", "good").stdout
        check("good" in out and "enabled" in out, "rule enable good printed %r" % out)
        check(ls()["good"][0] == "running", "rule ls after enable: good is %r" % (ls()["good"],))
        wait_until("demo-cooler x changes after rule enable good",
                   lambda: point(d, "demo-cooler", "x")["time"] != x2["time"], 5)

        # Errors name the thing.
        r = cli("show", "nope", code=1)
        check('no rule "nope"' in r.stderr and r.stdout == "",
              "rule show nope: stderr %r does not say no rule \"nope\"" % r.stderr)
        r = cli("show", "demo-temp", code=1)
        check("signalGenerator" in r.stderr and "not a rule" in r.stderr,
              "rule show demo-temp: stderr %r does not say it is a signalGenerator, not a rule"
              % r.stderr)
        down = "http://127.0.0.1:%d" % free_port()
        r = h.run("rule", "ls", "--url", down, timeout=20)
        n = h.run("node", "ls", "--url", down, timeout=20)
        check(r.returncode == 1 and n.returncode == 1 and down in r.stderr and
              r.stderr.replace("sprig rule ls:", "sprig node ls:") == n.stderr,
              "rule ls against %s: exit %d, %r; node ls says %r"
              % (down, r.returncode, r.stderr, n.stderr))

        # Help lists the commands.
        for args in (["rule", "--help"], ["--help"]):
            r = h.run(*args, timeout=10)
            check(r.returncode == 0 and all(re.search(r"\b%s\b" % c, r.stdout) for c in
                                            ("ls", "show", "enable", "disable")),
                  "sprig %s: exit %d, does not list ls, show, enable, disable:\n%s"
                  % (" ".join(args), r.returncode, r.stdout))
        for c in ("ls", "show", "enable", "disable"):
            r = h.run("rule", c, "--help", timeout=10)
            check(r.returncode == 0 and r.stdout.startswith("usage: sprig rule %s" % c)
                  and "--url" in r.stdout,
                  "sprig rule %s --help: exit %d\n%s" % (c, r.returncode, r.stdout))

        d.stop()


if __name__ == "__main__":
    main(test)
