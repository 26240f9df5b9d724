"""`sprig rule test`: running a rule offline, as a field engineer does before deploying.
  - a passing steps file exits 0 and says PASS with the count of expectations; every point
    the rule writes is printed with the simulated time;
  - a failed expect exits 1, names the steps file and line, what was wanted and what the
    tree holds, and the test goes on to the end;
  - a rule that does not load (syntax error) exits 1 naming its line; a steps file that
    raises stops with its line;
  - simulated time: `every` fires once per simulated second under advance() until it
    cancels itself, and
    schedules (`at` on a weekday) fire at their local time (UTC in tests);
  - --fixture takes a tree exported from a running daemon (`sprig export`), whose point
    times are real ones, and the rule reads that tree;
  - bad arguments exit 2 naming the flag or file.
"""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, sprig_binary  # noqa: E402
from test_api import Daemon  # noqa: E402

RULE = """\
-- copies the tank level into the cooler, and counts seconds
on({node = "tank", point = "value"}, function(ev)
  set("cooler", "valueSet", ev.value > 50 and 1 or 0)
end)
local tick
tick = every(1000, function()
  state.s = (state.s or 0) + 1
  set("cooler", "seconds", state.s)
  if state.s == 10 then cancel(tick) end
end)
at({time = "07:30", days = {"tue"}}, function() set("cooler", "morning", now()) end)
"""

STEPS = """\
node{id = "tank", type = "group"}
node{id = "cooler", type = "group"}
set("tank", "value", 70)
expect("cooler", "valueSet", 1)
set("tank", "value", 20)
expect("cooler", "valueSet", 0)
advance(10500)
expect("cooler", "seconds", 10)
advance(5000)
expect("cooler", "seconds", 10)
expect("cooler", "morning", nil)
clock("2026-01-06T07:30:00Z")
expect("cooler", "morning", 1767684600)
"""

FAILING = """\
node{id = "tank", type = "group"}
node{id = "cooler", type = "group"}
set("tank", "value", 70)
expect("cooler", "valueSet", 0)
expect("cooler", "valueSet", 1)
"""


def run(h, *args):
    return subprocess.run([sprig_binary(), "rule", "test"] + list(args), capture_output=True,
                          text=True, timeout=60, cwd=h.path())


def write(h, name, text):
    path = h.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test():
    with Harness("rule-offline") as h:
        rule = write(h, "copy.lua", RULE)
        steps = write(h, "copy.test.lua", STEPS)
        r = run(h, rule, "--steps", steps)
        check(r.returncode == 0, "a passing test exited %d:\n%s%s" % (r.returncode, r.stdout,
                                                                      r.stderr))
        check("PASS copy.lua: 6 expectations hold" in r.stdout, "no PASS line:\n" + r.stdout)
        check("+0.000s  set  cooler valueSet = 1" in r.stdout,
              "the rule's first write is not printed with its time:\n" + r.stdout)
        check("+10.000s  set  cooler seconds = 10" in r.stdout,
              "the tenth tick is not printed at +10.000s:\n" + r.stdout)

        failing = write(h, "fail.test.lua", FAILING)
        r = run(h, rule, "--steps", failing)
        check(r.returncode == 1, "a failed expect exited %d" % r.returncode)
        check("FAIL fail.test.lua:4: expect(cooler, valueSet): wants 0, has 1" in r.stdout,
              "the failure does not name line 4, the want and the value:\n" + r.stdout)
        check("FAIL copy.lua: 1 of 2 expectations failed" in r.stdout,
              "no summary of 1 of 2 failed:\n" + r.stdout)

        broken = write(h, "broken.lua", "local a = 1\nlocal b = = 2\n")
        r = run(h, broken)
        check(r.returncode == 1 and "broken.lua:2:" in r.stdout and "does not load" in r.stdout,
              "a syntax error: exit %d\n%s" % (r.returncode, r.stdout))

        raising = write(h, "raise.test.lua", 'node{id = "tank", type = "group"}\n'
                                             'set("nowhere", "value", 1)\n')
        r = run(h, rule, "--steps", raising)
        check(r.returncode == 1 and "raise.test.lua:2:" in r.stdout and "nowhere" in r.stdout,
              "a raising steps file: exit %d\n%s" % (r.returncode, r.stdout))

        # A fixture exported from a running daemon: real times, the demo's nodes.
        d = Daemon(h, h.path("live.db"), "--demo", "--rules", "off", name="live")
        doc = d.expect(200, "GET", "/v1/export")
        d.stop()
        fixture = h.path("site.json")
        with open(fixture, "w") as f:
            json.dump(doc, f)
        level = write(h, "level.lua", 'on({node = "demo-level", point = "value"}, function(ev)\n'
                                      '  set("demo-cooler", "fan", ev.value > 50)\n'
                                      'end)\n'
                                      'set("demo-cooler", "generators", '
                                      '#find("signalGenerator"))\n')
        lsteps = write(h, "level.test.lua", 'expect("demo-cooler", "generators", 4)\n'
                                            'report("demo-level", "value", 70)\n'
                                            'expect("demo-cooler", "fan", true)\n')
        r = run(h, level, "--fixture", fixture, "--steps", lsteps)
        check(r.returncode == 0, "the rule against an exported tree exited %d:\n%s%s"
              % (r.returncode, r.stdout, r.stderr))

        for args, says in [(["--bogus", rule], "unknown flag --bogus"),
                           ([rule, "--steps", h.path("none.lua")], "--steps"),
                           ([rule, "--fixture", steps], "is not JSON"),
                           ([h.path("bad name.lua")], "must be 1-64 bytes"),
                           ([], "name one rule file")]:
            r = run(h, *args)
            check(r.returncode == 2 and says in r.stderr,
                  "sprig rule test %s: exit %d, stderr %r (wanted %r)"
                  % (" ".join(args), r.returncode, r.stderr, says))


if __name__ == "__main__":
    main(test)
