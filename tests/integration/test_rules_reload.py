"""Rules: hot reload of the rules folder under a running daemon (scripts/README.md, "Where
rules come from" and "What runs, and when"), with `sprig run --demo --demo-rate 20
--rules DIR`.

`follow.lua` writes demo-cooler `mark` on every demo-temp sample. It proves:
  - an edit applies within a second (asserted under 3 s, the measured latency from the
    write to the API showing the new mark is printed), both when the file is written
    in place and when it is written to a temp name and renamed over (as editors do);
  - a broken edit (syntax error on line 2) sets `error` to "follow.lua:2: ..." and the
    previous version runs on: a mark reset to 0 through the API is written again by it;
  - fixing it clears `error` and the fixed version runs;
  - deleting the file deletes the rule node (GET shows "deleted": true, it is no longer
    a child of the root) and the rule stops: a mark reset to 0 stays 0 while demo-temp
    keeps sampling;
  - `state` survives a reload: `count.lua` counts samples in state.n into demo-cooler
    `n`; edited to write state.n + 1000, its first value after the edit is above 1000 +
    the last value before it (the count went on, it was not reset);
  - SIGTERM exits 0 and `sprig store verify` passes.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402

RELOAD_MAX = 3.0  # seconds; the README promises "within a second", machines are noisy

FOLLOW = 'on({node="demo-temp", point="value"}, function(ev)\n  set("demo-cooler", "mark", %d)\nend)\n'
BROKEN = 'on({node="demo-temp", point="value"}, function(ev)\n  set("demo-cooler", "mark", = 9)\nend)\n'
COUNT = ('on({node="demo-temp", point="value"}, function(ev)\n'
         '  state.n = (state.n or 0) + 1\n'
         '  set("demo-cooler", "n", state.n%s)\n'
         'end)\n')


def write_rename(path, text):
    """As editors save: a temp file in the same folder, renamed over the rule."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".swp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def write_in_place(path, text):
    with open(path, "w") as f:
        f.write(text)




def value(d, node, ptype):
    p = d.points(node).get(ptype)
    return p["value"] if p is not None else None




def error_of(d, rule):
    p = d.points(rule).get("error")
    return p["text"] if p is not None else None


def set_mark(d, v):
    d.expect(200, "POST", "/v1/nodes/demo-cooler/points", [{"type": "mark", "value": v}])


def edit(d, path, text, mark, how):
    """Writes the rule and measures the time until the API shows demo-cooler mark."""
    t0 = time.monotonic()
    how(path, text)
    wait_until("the edit (%s) applies: demo-cooler mark == %d (it is %r)"
               % (how.__name__, mark, value(d, "demo-cooler", "mark")),
               lambda: value(d, "demo-cooler", "mark") == mark, RELOAD_MAX)
    lat = time.monotonic() - t0
    print("reload latency (%s): %.0f ms" % (how.__name__, lat * 1000))
    return lat


def test():
    with Harness("rules-reload") as h:
        rdir = h.path("rules")
        os.mkdir(rdir)
        follow = os.path.join(rdir, "follow.lua")
        count = os.path.join(rdir, "count.lua")
        write_in_place(follow, FOLLOW % 1)
        write_in_place(count, COUNT % "")
        d = Daemon(h, h.path("reload.db"), "--demo", "--demo-rate", "20", "--rules", rdir,
                   name="reload")
        root = d.status()["root"]
        wait_until("follow runs: demo-cooler mark == 1",
                   lambda: value(d, "demo-cooler", "mark") == 1, 15)
        # A rule that never failed has no error point yet (None); "" once one cleared.
        check(error_of(d, "follow") in (None, ""), "follow's error: %r" % error_of(d, "follow"))

        # Edits: renamed over (as editors do), then written in place.
        lat_rename = edit(d, follow, FOLLOW % 2, 2, write_rename)
        lat_inplace = edit(d, follow, FOLLOW % 7, 7, write_in_place)
        lat_rename2 = edit(d, follow, FOLLOW % 2, 2, write_rename)
        for lat in (lat_rename, lat_inplace, lat_rename2):
            check(lat < RELOAD_MAX, "an edit took %.2f s to apply" % lat)

        # A broken edit: error names file and line, the old version (mark 2) runs on.
        write_rename(follow, BROKEN)
        err = wait_until("follow's error names follow.lua:2: after a broken edit",
                         lambda: "follow.lua:2:" in (error_of(d, "follow") or "")
                         and error_of(d, "follow"), RELOAD_MAX)
        print("broken edit: error %r" % err)
        set_mark(d, 0)
        wait_until("the previous version of follow writes mark 2 again after it was set "
                   "to 0 (mark is %r)" % value(d, "demo-cooler", "mark"),
                   lambda: value(d, "demo-cooler", "mark") == 2, RELOAD_MAX)
        check("follow.lua:2:" in (error_of(d, "follow") or ""),
              "a run of the old version cleared the load error: %r" % error_of(d, "follow"))

        # Fixed: error clears, the new version runs.
        lat_fix = edit(d, follow, FOLLOW % 3, 3, write_rename)
        check(lat_fix < RELOAD_MAX, "the fix took %.2f s to apply" % lat_fix)
        wait_until("follow's error is cleared after the fix (it is %r)" % error_of(d, "follow"),
                   lambda: error_of(d, "follow") == "", RELOAD_MAX)

        # State survives a reload: the count goes on from where it was.
        wait_until("count has counted 20 samples",
                   lambda: (value(d, "demo-cooler", "n") or 0) >= 20, 15)
        before = value(d, "demo-cooler", "n")
        write_rename(count, COUNT % " + 1000")
        after = wait_until("the edited count writes n > 1000",
                           lambda: (lambda v: v if v is not None and v > 1000 else None)(
                               value(d, "demo-cooler", "n")), RELOAD_MAX)
        print("state across a reload: n %d before the edit, %d after (a reset would give "
              "about 1001)" % (before, after))
        check(after > 1000 + before, "state was not carried over the reload: n was %d "
              "before the edit, %d after (expected > %d)" % (before, after, 1000 + before))

        # Deleting the file deletes the rule node, and the rule stops.
        os.unlink(follow)
        n = wait_until("GET /v1/nodes/follow shows the node deleted",
                       lambda: (lambda o: o if o.get("deleted") is True else None)(
                           d.expect(200, "GET", "/v1/nodes/follow")), RELOAD_MAX)
        kids = [c["id"] for c in d.expect(200, "GET", "/v1/nodes/%s/children" % root)]
        check("follow" not in kids, "follow is still a child of the root: %r" % kids)
        check("count" in kids, "count is not a child of the root: %r" % kids)
        listed = [o["id"] for o in d.expect(200, "GET", "/v1/nodes")]
        check("follow" not in listed, "a deleted rule is listed by GET /v1/nodes")
        check(n["type"] == "rule", "follow: %r" % n)
        set_mark(d, 0)
        t_before = d.points("demo-temp")["value"]["time"]
        n_before = value(d, "demo-cooler", "n")
        time.sleep(1.0)  # 20 samples of demo-temp: a running follow would write mark 3
        check(d.points("demo-temp")["value"]["time"] != t_before,
              "demo-temp did not sample for a second")
        check(value(d, "demo-cooler", "n") > n_before, "count stopped when follow was deleted")
        mark = value(d, "demo-cooler", "mark")
        check(mark == 0, "the deleted rule follow still runs: mark is %r, set to 0" % mark)

        d.stop()  # SIGTERM, exit code 0
        h.verify(d.db, expect=0)
        print("reload latencies: rename %.0f ms, in place %.0f ms, rename %.0f ms, fix %.0f ms"
              % (lat_rename * 1000, lat_inplace * 1000, lat_rename2 * 1000, lat_fix * 1000))


if __name__ == "__main__":
    main(test)
