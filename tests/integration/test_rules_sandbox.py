"""Rules: the sandbox's protections against a running daemon (scripts/README.md,
"Isolation"), with `sprig run --demo --demo-rate 50 --rules DIR`.

DIR holds one rule per file, each misbehaving in its own way, next to `counter.lua`, a
well-behaved rule that counts demo-temp's samples into demo-cooler `seen`. It proves:
  - a handler that never ends (`while true do end`) is stopped by its budget: `error`
    starts with "stopped:" and says "runs too long"; a loop that calls the endless loop
    through `pcall` (spin2) cannot catch the budget and is stopped the same way; a
    stopped rule does not run again (its `runs` stays 1);
  - a handler that allocates without end is stopped with "not enough memory";
  - the top level of a rule cannot reach os.execute, io, require, debug, nor load
    bytecode (a string beginning with "\\27Lua"): each rule's `error` names what was
    refused, with file and line, and the file os.execute would have made does not exist;
  - a syntax error on line 3 is reported as "syntax.lua:3: ...";
  - a write the schema refuses (demo-temp sampleRate = 5000, max 1000) sets `error`
    naming the node, the point and the value, and demo-temp's sampleRate is unchanged;
  - through all of this the daemon keeps working: demo-cooler `seen` keeps increasing,
    /v1/status answers, demo-temp's value keeps changing; SIGTERM exits 0 and
    `sprig store verify` passes.
"""
import os
import re
import secrets
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402

DEADLINE = 15.0  # seconds for each rule to report what happened to it

ON_TEMP = 'on({node="demo-temp", point="value"}, function(ev)\n  %s\nend)\n'


def rules(pwned):
    return {
        "counter.lua": 'on({node="demo-temp", point="value"}, function(ev) '
                       'state.n = (state.n or 0) + 1; set("demo-cooler", "seen", state.n) end)\n',
        "spin.lua": ON_TEMP % "while true do end",
        "spin2.lua": ON_TEMP % "while true do pcall(function() while true do end end) end",
        # 1 MiB per step in 16-byte copies: out of memory in 16 steps, also in a
        # sanitizer build (one-byte copies there ran into the 100 ms budget first).
        "bomb.lua": ON_TEMP % ('local t = {} while true do '
                               't[#t+1] = string.rep("0123456789abcdef", 1 << 16) end'),
        "escape_os.lua": 'os.execute("touch %s")\n' % pwned,
        "escape_io.lua": 'io.open("/etc/passwd")\n',
        "escape_require.lua": 'require("os")\n',
        # a Lua 5.4 binary chunk header: load must refuse it (mode "t" only)
        "escape_load.lua": 'local f, err = load("\\27Lua\\84\\0\\25\\147\\r\\n\\26\\n")\n'
                           'assert(f, err)\n',
        "escape_debug.lua": 'debug.sethook(function() end, "", 1)\n',
        "syntax.lua": "local a = 1\nlocal b = 2\nlocal c = = 3\n",
        "badwrite.lua": ON_TEMP % 'set("demo-temp", "sampleRate", 5000)',
    }






def rule_error(d, rule):
    """The rule's `error` text once it is non-empty, else None."""
    p = d.points(rule).get("error")
    return p["text"] if p is not None and p["text"] != "" else None


def expect_error(d, rule, wants, prefix=None, names=None):
    """Waits for the rule's error; checks its prefix, its substrings, and that the message
    after "FILE:LINE: " matches the regex `names` (what was refused, as a word)."""
    err = wait_until("rule %s reports an error" % rule, lambda: rule_error(d, rule), DEADLINE)
    if prefix is not None:
        check(err.startswith(prefix), "rule %s: error should start with %r: %r"
              % (rule, prefix, err))
    for w in wants:
        check(w in err, "rule %s: error should contain %r: %r" % (rule, w, err))
    if names is not None:
        m = re.match(r"%s\.lua:\d+: (.*)$" % re.escape(rule), err, re.S)
        check(m is not None and re.search(names, m.group(1)) is not None,
              "rule %s: the error should say FILE:LINE: and then name what was refused "
              "(/%s/): %r" % (rule, names, err))
    print("%-15s error: %s" % (rule, err))
    return err


def test():
    pwned = "/tmp/pwned-sprig-%d-%s" % (os.getpid(), secrets.token_hex(6))
    try:
        with Harness("rules-sandbox") as h:
            rdir = h.path("rules")
            os.mkdir(rdir)
            for name, src in rules(pwned).items():
                with open(os.path.join(rdir, name), "w") as f:
                    f.write(src)
            d = Daemon(h, h.path("sandbox.db"), "--demo", "--demo-rate", "50", "--rules", rdir,
                       name="sandbox")

            # The budgets: time/instructions (even through pcall) and memory.
            for rule in ("spin", "spin2"):
                expect_error(d, rule, ["runs too long", "%s.lua:" % rule], prefix="stopped:")
            expect_error(d, "bomb", ["not enough memory", "bomb.lua:"], prefix="stopped:")

            # The top level cannot get out of the sandbox.
            expect_error(d, "escape_os", ["escape_os.lua:1:"], names=r"\bexecute\b")
            expect_error(d, "escape_io", ["escape_io.lua:1:"], names=r"\bio\b")
            expect_error(d, "escape_require", ["escape_require.lua:1:"], names=r"\brequire\b")
            expect_error(d, "escape_load", ["escape_load.lua:2:"], names=r"bytecode|binary")
            expect_error(d, "escape_debug", ["escape_debug.lua:1:"], names=r"\bdebug\b")
            check(not os.path.exists(pwned), "os.execute in a rule created %s" % pwned)

            expect_error(d, "syntax", ["syntax.lua:3:"])

            # A write the schema refuses: named, and nothing changes.
            expect_error(d, "badwrite", ["badwrite.lua:", "demo-temp", "sampleRate", "5000"])
            rate = d.points("demo-temp")["sampleRate"]
            check(rate["value"] == 50, "demo-temp sampleRate changed to %r by a refused rule "
                  "write (expected 50)" % rate)

            # A stopped rule stays stopped: it ran once (its runs point is saved when it
            # is stopped and at most a second later).
            time.sleep(1.5)
            for rule in ("spin", "spin2", "bomb"):
                pts = d.points(rule)
                runs = pts.get("runs", {}).get("value")
                check(runs == 1, "rule %s was stopped but has run %r times" % (rule, runs))
                check(pts["error"]["text"].startswith("stopped:"),
                      "rule %s: its error changed: %r" % (rule, pts["error"]["text"]))

            # ... and the daemon goes on: the counter rule runs, the API answers, the
            # generators sample.
            seen1 = wait_until("demo-cooler has a seen point",
                               lambda: d.points("demo-cooler").get("seen"), DEADLINE)["value"]
            t1 = d.points("demo-temp")["value"]
            time.sleep(1.0)
            seen2 = d.points("demo-cooler")["seen"]["value"]
            t2 = d.points("demo-temp")["value"]
            check(seen2 > seen1, "demo-cooler seen did not increase in a second: %r -> %r"
                  % (seen1, seen2))
            print("counter: seen %d -> %d in a second" % (seen1, seen2))
            check(t2["time"] != t1["time"] and t2["value"] != t1["value"],
                  "demo-temp's value did not change in a second: %r -> %r" % (t1, t2))
            st = d.status()
            check(st["root"] and st["store"]["commitErrors"] == 0, "status: %r" % st)
            check(d.points("demo-temp")["sampleRate"]["value"] == 50,
                  "demo-temp sampleRate changed")
            check(not os.path.exists(pwned), "os.execute in a rule created %s" % pwned)

            d.stop()  # SIGTERM, exit code 0
            h.verify(d.db, expect=0)
    finally:
        if os.path.exists(pwned):
            os.unlink(pwned)


if __name__ == "__main__":
    main(test)
