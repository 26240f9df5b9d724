"""The example rules run live in the demo: `sprig run --demo` without --rules imports the
shipped scripts/examples/*.lua (and not their *.test.lua steps), every one of them loads
without an error and runs, and the ones that act at once can be seen acting on the demo
plant, each write carrying its rule's id as origin:
  - setpoint writes demo-cooler valueSet (0..100, from demo-level),
  - schedule writes demo-cooler enabled (from the time of day),
  - threshold writes its own active point (from demo-temp),
  - chain follows threshold's active into demo-cooler boost,
  - rate writes demo-plant tempRate every second.
Runs are saved once a second as the rules' local `runs` points. SIGTERM exits 0 and the
database verifies.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402

EXAMPLES = ["threshold", "debounce", "schedule", "setpoint", "notify", "chain", "rate"]






def test():
    with Harness("demo-rules") as h:
        d = Daemon(h, h.path("demo.db"), "--demo", "--demo-rate", "20", name="demo")
        rules = {n["id"] for n in d.expect(200, "GET", "/v1/nodes?type=rule")}
        check(rules == set(EXAMPLES), "the demo's rules are %r, expected %r"
              % (sorted(rules), sorted(EXAMPLES)))
        for r in EXAMPLES:
            wait_until("rule %s has run (runs saved): %r" % (r, d.points(r).get("runs")),
                       lambda r=r: d.points(r).get("runs", {}).get("value", 0) >= 1, 15)
            p = d.points(r)
            check(p.get("error", {}).get("text", "") == "",
                  "rule %s reports an error: %r" % (r, p.get("error")))
            check(p["file"]["text"] == r + ".lua", "rule %s file point: %r" % (r, p["file"]))

        def written(node, ptype, rule):
            p = d.points(node).get(ptype)
            return p is not None and p["origin"] == rule and p

        sp = wait_until("setpoint writes demo-cooler valueSet",
                        lambda: written("demo-cooler", "valueSet", "setpoint"), 10)
        check(0 <= sp["value"] <= 100, "setpoint wrote valueSet %r" % sp["value"])
        en = wait_until("schedule writes demo-cooler enabled",
                        lambda: written("demo-cooler", "enabled", "schedule"), 10)
        check(en["value"] in (0, 1), "schedule wrote enabled %r" % en["value"])
        wait_until("threshold writes its active point",
                   lambda: written("threshold", "active", "threshold"), 10)
        wait_until("chain writes demo-cooler boost",
                   lambda: written("demo-cooler", "boost", "chain"), 10)
        first = wait_until("rate writes demo-plant tempRate",
                           lambda: written("demo-plant", "tempRate", "rate"), 10)
        wait_until("rate writes tempRate again a second later",
                   lambda: written("demo-plant", "tempRate", "rate")["time"] != first["time"], 10)
        stderr = d.proc.stderr()
        for r in EXAMPLES:
            check("rule %s: loaded %s.lua" % (r, r) in stderr,
                  "the log does not say rule %s loaded" % r)
        check(".test.lua imported" not in stderr, "a steps file was imported as a rule")
        rc = d.proc.stop()
        check(rc == 0, "SIGTERM made sprig exit %d\n%s" % (rc, d.proc.stderr_tail()))
        h.verify(h.path("demo.db"), expect=0)


if __name__ == "__main__":
    main(test)
