"""Nothing a script does stalls the daemon (issue: "every entry into Lua runs under its
budget"). Each hostile case below ran forever (or aborted) before: pattern backtracking
inside C, C loops over huge counts, an xpcall message handler that loops, a finalizer
(__gc), a loop of expensive C calls timed only every 10,000 instructions, a rule that
rewrites another rule, and a state save that runs the script's own metamethods.

Every case runs
  - in a rule, at its top level (`top_NAME.lua`) and in a handler (`on_NAME.lua`), in a
    daemon started with `--demo --demo-rate 50 --rules DIR`;
  - in a serial line parser (a `serial` node in line mode on a socat pty, its parser
    posted through the API), at its top level and per line;
  - at the top of a schema file given to `sprig schema check`;
and must end as its budget says, with an error that names the file, the line and why.
Throughout, a thread asks GET /v1/status every 50 ms: the API must keep answering (the
slowest answer is printed and must stay under a generous bound), the demo's counter rule
keeps counting, and the daemon stops cleanly on SIGTERM after its rules were edited,
disabled and deleted (their states closed). `sprig rule test` of a hostile rule returns.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon, http_request  # noqa: E402
from modbus_sim import PtyPair  # noqa: E402

DEADLINE = 20.0  # seconds for a rule or parser to report what happened to it
SLOWEST_OK = 3.0  # seconds: the bound on any GET /v1/status answer while all this runs

BIG = 'string.rep("a", 5000)'
BACKTRACK = '".-.-.-.-.-.-b"'

# name: (statement, what the error must say; None: the statement must succeed)
CASES = {
    "pat_find": ("string.find(%s, %s)" % (BIG, BACKTRACK), "pattern too complex (over"),
    "pat_gsub": ("string.gsub(%s, %s, 'x')" % (BIG, BACKTRACK),
                 "pattern too complex (over"),
    "pat_gmatch": ("for m in string.gmatch(%s, %s) do end" % (BIG, BACKTRACK),
                   "pattern too complex (over"),
    "pat_match": ("string.match(%s, %s)" % (BIG, BACKTRACK), "pattern too complex (over"),
    "pat_balance": ('string.find(string.rep("(", 20000), "%b()")',
                    "pattern too complex (over"),
    # A plain find is linear now (and counted): only a loop of them runs long.
    "pat_plain": ('local a, b = string.rep("a", 1000000), string.rep("a", 500000) .. "b" '
                  'while true do string.find(a, b, 1, true) end', "(over"),
    "rep_empty": ('assert(string.rep("", math.maxinteger) == "")', None),
    "move": ("table.move({}, 1, math.maxinteger - 1, 2)",
             "table.move: too many elements (over budget)"),
    "xpcall_loop": ("xpcall(function() while true do end end, function() while true do end end)",
                    "runs too long"),
    "gc": ("keep = setmetatable({}, {__gc = function() while true do end end})",
           "setmetatable: __gc is not available"),
    "upper": ('local s = string.rep("a", 3000000) while true do local u = s:upper() end',
              "(over"),
}
RULE_ONLY = {
    "rewrite": ('set("counter", "script", "on({node=\\"demo-temp\\"}, function() end)")',
                'point "script" is changed by people only, not by rule'),
    "state_save": ("setmetatable(_G, {__index = function() while true do end end}) "
                   "state = nil", "runs too long"),
}

COUNTER = ('on({node="demo-temp", point="value"}, function(ev)\n'
           '  state.n = (state.n or 0) + 1; set("demo-cooler", "seen", state.n)\nend)\n')


def top_rule(stmt):
    return "-- a hostile top level\n%s\n" % stmt


def on_rule(stmt):
    return 'on({node="demo-temp", point="value"}, function(ev)\n  %s\nend)\n' % stmt


class Pinger:
    """GET /v1/status every 50 ms on a thread; records the slowest answer and failures."""

    def __init__(self, port):
        self.port = port
        self.slowest = 0.0
        self.count = 0
        self.failures = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                r = http_request(self.port, "GET", "/v1/status", None, None, None, timeout=10)
                if r.status != 200:
                    self.failures.append("status %r" % r.status)
            except Exception as e:  # noqa: BLE001 - any failure to answer is the finding
                self.failures.append(repr(e))
            dt = time.monotonic() - t0
            self.slowest = max(self.slowest, dt)
            self.count += 1
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._t.join(15)


def rule_error(d, rule):
    n = d.node(rule)
    if n is None:
        return None
    p = d.points(rule).get("error")
    return p["text"] if p is not None and p["text"] != "" else None


def rules_part(h):
    rdir = h.path("rules")
    os.mkdir(rdir)
    files = {"counter.lua": COUNTER}
    for name, (stmt, _) in list(CASES.items()) + list(RULE_ONLY.items()):
        files["top_%s.lua" % name] = top_rule(stmt)
        files["on_%s.lua" % name] = on_rule(stmt)
    files["on_rep_empty.lua"] = on_rule('assert(string.rep("", math.maxinteger) == "") '
                                        'set("demo-cooler", "repDone", 1)')
    for name, src in files.items():
        with open(os.path.join(rdir, name), "w") as f:
            f.write(src)
    d = Daemon(h, h.path("hostile.db"), "--demo", "--demo-rate", "50", "--rules", rdir,
               name="hostile")
    ping = Pinger(d.port)
    try:
        for name, (stmt, want) in list(CASES.items()) + list(RULE_ONLY.items()):
            for kind in ("top", "on"):
                rule = "%s_%s" % (kind, name)
                if want is None:
                    continue
                t0 = time.monotonic()
                err = wait_until("rule %s reports an error" % rule,
                                 lambda: rule_error(d, rule), DEADLINE)
                check(want in err, "rule %s: error should contain %r: %r" % (rule, want, err))
                if name != "state_save":
                    place = "%s.lua:2:" % rule
                    check(place in err, "rule %s: error should name %r: %r" % (rule, place, err))
                print("%-18s %5.2f s  %s" % (rule, time.monotonic() - t0, err))
        wait_until("on_rep_empty ran to its end", lambda: d.points("demo-cooler").get("repDone"),
                   DEADLINE)
        check(rule_error(d, "top_rep_empty") is None and rule_error(d, "on_rep_empty") is None,
              "string.rep of an empty string failed: %r %r"
              % (rule_error(d, "top_rep_empty"), rule_error(d, "on_rep_empty")))
        print("string.rep('', math.maxinteger) returns '' at once: ok")

        # The rewritten rule still runs its own file's code, and counts.
        script = d.points("counter")["script"]["text"]
        check(script == COUNTER, "counter's script was changed by another rule: %r" % script)
        seen1 = wait_until("demo-cooler has seen", lambda: d.points("demo-cooler").get("seen"),
                           DEADLINE)["value"]
        time.sleep(1.0)
        seen2 = d.points("demo-cooler")["seen"]["value"]
        check(seen2 > seen1, "the counter rule stopped counting: %r -> %r" % (seen1, seen2))

        # Their states close: an edit (reload), a disable, a delete; then SIGTERM.
        with open(os.path.join(rdir, "top_gc.lua"), "w") as f:
            f.write("-- fixed\nlocal x = 1\n")
        d.expect(200, "POST", "/v1/nodes/on_upper/points",
                 [{"type": "disabled", "value": 1}])
        d.expect(200, "POST", "/v1/nodes/on_xpcall_loop/points",
                 [{"type": "disabled", "value": 1}])
        os.remove(os.path.join(rdir, "top_xpcall_loop.lua"))
        os.remove(os.path.join(rdir, "on_state_save.lua"))
        wait_until("top_gc reloaded without error", lambda: rule_error(d, "top_gc") is None,
                   DEADLINE)
        for gone in ("top_xpcall_loop", "on_state_save"):
            wait_until("%s deleted" % gone, lambda: d.node(gone).get("deleted") is True,
                       DEADLINE)
        d.status()
    finally:
        ping.stop()
    print("API: %d answers, the slowest %.3f s, %d failures"
          % (ping.count, ping.slowest, len(ping.failures)))
    check(not ping.failures, "GET /v1/status failed while rules misbehaved: %s"
          % ping.failures[:5])
    check(ping.slowest < SLOWEST_OK, "GET /v1/status took %.2f s while rules misbehaved"
          % ping.slowest)
    t0 = time.monotonic()
    d.proc.stop()
    code = d.proc.wait(15)
    check(code == 0, "SIGTERM: sprig exited %r; stderr:\n%s" % (code, d.proc.stderr_tail()))
    print("SIGTERM: exit 0 in %.2f s" % (time.monotonic() - t0))

    # sprig rule test of a hostile rule returns, saying why.
    for name in ("move", "upper", "pat_find"):
        path = os.path.join(rdir, "top_%s.lua" % name)
        r = h.run("rule", "test", path, timeout=60)
        out = r.stdout + r.stderr
        want = CASES[name][1]
        check(r.returncode != 0 and want in out and "top_%s.lua:2:" % name in out,
              "sprig rule test top_%s.lua: should fail naming line 2 and %r; exit %d: %s"
              % (name, want, r.returncode, out))
        print("sprig rule test top_%s.lua: exit %d" % (name, r.returncode))


def parser_part(h):
    pty = PtyPair(h, "line")
    fd = os.open(pty.b, os.O_RDWR | os.O_NOCTTY)
    d = Daemon(h, h.path("parser.db"), name="parser")
    ping = Pinger(d.port)
    try:
        import termios
        import tty
        tty.setraw(fd, termios.TCSANOW)
        root = d.status()["root"]
        d.expect(201, "POST", "/v1/nodes",
                 {"id": "dev1", "type": "serial", "parent": root,
                  "points": [{"type": "port", "text": pty.a}, {"type": "mode", "text": "line"},
                             {"type": "parser", "text": "return function(l) return {} end"}]})
        wait_until("the port open", lambda: d.points("dev1").get("connected", {}).get("value")
                   == 1, DEADLINE)
        for name, (stmt, want) in CASES.items():
            if want is None:
                continue
            for kind in ("top", "line"):
                if kind == "top":
                    src = "%s\nreturn function(line) return {} end\n" % stmt
                else:
                    src = "return function(line)\n  %s\n  return {}\nend\n" % stmt
                d.expect(200, "POST", "/v1/nodes/dev1/points", [{"type": "parser", "text": src}])
                t0 = time.monotonic()
                deadline = t0 + DEADLINE
                err = None
                while err is None or want not in err:
                    check(time.monotonic() < deadline,
                          "parser %s (%s): error should contain %r, got %r"
                          % (name, kind, want, err))
                    if kind == "line":
                        os.write(fd, b"T=1\n")
                    time.sleep(0.2)
                    p = d.points("dev1").get("error")
                    err = p["text"] if p is not None else None
                print("parser %-12s %-4s %5.2f s  %s" % (name, kind, time.monotonic() - t0, err))
                where = "parser:1:" if kind == "top" else "parser:2:"
                check(where in err, "parser %s (%s): error should name %r: %r"
                      % (name, kind, where, err))
    finally:
        ping.stop()
        os.close(fd)
    print("API with hostile parsers: %d answers, the slowest %.3f s, %d failures"
          % (ping.count, ping.slowest, len(ping.failures)))
    check(not ping.failures and ping.slowest < SLOWEST_OK,
          "GET /v1/status while parsers misbehaved: slowest %.2f s, failures %s"
          % (ping.slowest, ping.failures[:5]))
    d.proc.stop()
    check(d.proc.wait(15) == 0, "SIGTERM: sprig did not exit 0")


def schema_part(h):
    for name, (stmt, want) in CASES.items():
        sdir = h.path("schema-%s" % name)
        os.mkdir(sdir)
        with open(os.path.join(sdir, "s.lua"), "w") as f:
            f.write("-- a hostile schema file\n%s\nnodetype \"thing%s\" { open = true }\n"
                    % (stmt, name.replace("_", "")))
        t0 = time.monotonic()
        r = h.run("schema", "check", sdir, timeout=60)
        dt = time.monotonic() - t0
        out = r.stdout + r.stderr
        if want is None:
            check(r.returncode == 0, "schema %s: check should pass: %s" % (name, out))
        else:
            check(r.returncode != 0 and want in out and "s.lua:2:" in out,
                  "schema %s: sprig schema check should fail naming s.lua:2: and %r; exit %d: %s"
                  % (name, want, r.returncode, out))
        print("schema %-12s %5.2f s  exit %d" % (name, dt, r.returncode))


def test():
    with Harness("lua-hostile") as h:
        schema_part(h)
        rules_part(h)
        parser_part(h)


if __name__ == "__main__":
    main(test)
