"""Acceptance: the Modbus client driver (drivers/modbus) when devices fail (DESIGN.md
section 8; schema/modbus.lua: quality "good" / "stale" (no answer) / "error" (exception
or bad reply), the bus's error counters; README "Reading the health of a bus"), against
modbus_sim.py. Every bus polls every 100 ms with a 300 ms timeout.

It proves:
  - a device that dies (the sim SIGKILLed, TCP): every IO goes quality "stale" within
    STALE_MAX (the measured latency is printed) and `value` stays the last good reading
    (sampled every 50 ms for 1.5 s, and no other value in the point's history since the
    kill: never 0); the device back on the same port with new values: quality "good" and
    the new values within RECOVER_MAX (reconnect backoff capped at 5 s);
  - a dead unit on a shared RTU line (a socat pty pair, two units, the sim never answers
    unit 2): unit 2's IO is "stale"; unit 2 is retried with a backoff (its attempts grow
    at least 2 s apart) capped at 5 s (no gap between attempts over 14 s beyond 5 s plus
    one try plus slack); meanwhile unit 1 keeps its poll rate: over 3 s at least 15 reads
    (the bound is derived at DEAD_UNIT_MIN_READS); unit 2 answering again is "good" with
    its value within RECOVER_MAX;
  - bad answers, each bus with retries 0 and one IO (hr 0 = 77), the fault switched on
    for 2.5 s then off (modbus_sim's control): a read answered with fewer registers than
    asked (short), with the sibling function code (fc) or the wrong transaction id (tid)
    over TCP, truncated (truncate, TCP and RTU), with a bad CRC (crc, RTU), one value short
    (short, RTU), from another unit (tid, RTU), or not at all (the unit silent, TCP); and an
    address the device refuses (an exception, continuously, beside a good IO): the IO's
    quality is "error" ("stale" for no answer), `value` stays 77 throughout, quality is
    "good" again once the fault is off; the bus counts every bad answer the sim sent:
    errorCountMalformed for short/fc/tid, errorCountCRC for crc, errorCountTimeout for no
    answer and for a truncated one (libmodbus reports both as ETIMEDOUT: the rest of the
    frame never came, so the IO is "stale"), errorCountException for the exception (and the IO's
    errorCountException); errorCount equals their sum (retries 0: one failed request per
    bad answer); the other counters stay 0; errorCountReset zeroes them;
  - the daemon keeps running throughout; SIGTERM exits 0 and `sprig store verify` passes.
Contract mismatches of the last part are collected and reported together.
"""
import os
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon, now_ns, ns_to_rfc3339  # noqa: E402
from modbus_sim import ModbusSim, PtyPair  # noqa: E402
from test_modbus_client import (POLL_MS, SETTLE, TIMEOUT_MS, WORDS, io_table,  # noqa: E402
                                make_bus, make_io, root_of, set_point, txt, val, wait_ios)

RETRIES = 1                                    # the schema's default, set explicitly
TRY_S = (1 + RETRIES) * TIMEOUT_MS / 1000      # longest a dead unit holds the line: 0.6 s
BACKOFF_CAP_S = 5.0                            # DESIGN.md: retried with backoff capped at 5 s
# A dead TCP device: the next poll (<= 100 ms away) fails at once (connection reset or
# refused) or at worst after one try (0.6 s); quality is written when it changes.
STALE_MAX = POLL_MS / 1000 + TRY_S + 1.3      # 2.0 s
# Back: the next retry is at most the backoff cap away, plus a poll and a try, + slack.
RECOVER_MAX = BACKOFF_CAP_S + POLL_MS / 1000 + TRY_S + 1.3   # 7.0 s
COUNTER_LAG = 1.5  # s: counters are written at most once a second (README)

# The dead unit on a shared line, measured over a 3 s window once its backoff has grown
# (two consecutive attempts on it at least 2 s apart; from there it grows to the 5 s
# cap): the dead unit is tried at most twice in the window, each
# try holding the line for at most (1 + retries) x timeout = 0.6 s, so at most 1.2 s of
# the 3 s are lost and unit 1 is polled every pollPeriod (100 ms) in the other >= 1.8 s:
# >= 18 polls, one fewer at each edge of the window: >= 16. The bound asked is 15, i.e.
# (3 s / pollPeriod) / 2. Without backoff (the dead unit tried on every poll) unit 1 would
# get one poll per 100 + 600 ms: at most 5 in 3 s.
DEAD_WINDOW = 3.0
DEAD_UNIT_MIN_READS = 15
DEAD_BACKOFF_GROWN = 2.0
DEAD_OBSERVE = 14.0  # s from unit 2 going stale: > 2 backoff caps
MAX_ATTEMPT_GAP = BACKOFF_CAP_S + TRY_S + 0.6  # 6.2 s between the starts of two tries


def history_values(d, node, since_ns):
    q = urllib.parse.urlencode({"type": "value", "from": ns_to_rfc3339(since_ns),
                                "limit": 1000})
    o = d.expect(200, "GET", "/v1/nodes/%s/history?%s" % (node, q))
    return [s["value"] for s in o["samples"]]


def f32_words(v):
    import struct
    b = struct.pack(">f", v)
    return [struct.unpack(">H", b[i:i + 2])[0] for i in (0, 2)]


# --- a device dies and comes back ------------------------------------------------------

def kill_restart(h, d, root):
    sim = ModbusSim(h, tcp=0, name="sim-kill",
                    init={1: {"hr": {0: 111, 2: WORDS["float32", "ABCD"]}, "co": {5: 1}}})
    port = sim.port
    make_bus(d, root, "mb-kill", uri="127.0.0.1:%d" % port, retries=RETRIES)
    make_io(d, "mb-kill", "k-u16", 1, 0, "holdingRegister")
    make_io(d, "mb-kill", "k-f32", 1, 2, "holdingRegister", dataFormat="float32")
    make_io(d, "mb-kill", "k-coil", 1, 5, "coil")
    old = {"k-u16": 111, "k-f32": -1234.5625, "k-coil": 1}
    wait_ios(d, old, SETTLE, "the IOs of mb-kill read")

    t_kill_ns = now_ns()
    t0 = time.monotonic()
    sim.kill()
    wait_ios(d, old, STALE_MAX, "after the device was killed: quality stale, value kept",
             quality="stale")
    lat_stale = time.monotonic() - t0
    end = time.monotonic() + 1.5
    n = 0
    while time.monotonic() < end:
        tab = io_table(d)
        for io, v in old.items():
            check(val(tab[io], "value") == v and txt(tab[io], "quality") == "stale",
                  "%s while its device is dead: value %r quality %r, expected value %r "
                  "(the last good one) and stale"
                  % (io, val(tab[io], "value"), txt(tab[io], "quality"), v))
        n += 1
        time.sleep(0.05)
    for io, v in old.items():
        hv = history_values(d, io, t_kill_ns)
        check(all(x == v for x in hv), "%s: its history since the kill holds %r; only the "
              "last good value %r may appear" % (io, hv, v))
    print("dead device: quality stale %.2f s after the kill (bound %.1f s), value kept "
          "over %d samples in 1.5 s" % (lat_stale, STALE_MAX, n))

    new = {"k-u16": 222, "k-f32": 3.5, "k-coil": 0}
    t0 = time.monotonic()
    ModbusSim(h, tcp=port, name="sim-kill-again",
              init={1: {"hr": {0: 222, 2: f32_words(3.5)}, "co": {5: 0}}})
    wait_ios(d, new, RECOVER_MAX, "the device back on port %d: quality good, new values"
             % port)
    print("device back: good with the new values %.2f s after it listened again (bound "
          "%.1f s)" % (time.monotonic() - t0, RECOVER_MAX))


# --- a dead unit on a shared RTU line ---------------------------------------------------

def attempt_groups(sim, unit, gap=0.45):
    """Start times of the tries on a unit: a try is its request and the retries that
    follow it within ~ a timeout."""
    starts, last = [], None
    for r in sim.reads(unit=unit):
        if last is None or r["t"] - last > gap:
            starts.append(r["t"])
        last = r["t"]
    return starts


def dead_unit(h, d, root):
    pty = PtyPair(h, "dead")
    sim = ModbusSim(h, rtu=pty.a, units=(1, 2), silent_unit=2, name="sim-dead",
                    init={1: {"hr": {0: 11}}, 2: {"hr": {0: 22}}})
    make_bus(d, root, "mb-dead", port=pty.b, retries=RETRIES)
    make_io(d, "mb-dead", "d-u1", 1, 0, "holdingRegister")
    make_io(d, "mb-dead", "d-u2", 2, 0, "holdingRegister")
    wait_ios(d, {"d-u1": 11}, SETTLE, "unit 1 on the shared line reads")
    wait_ios(d, {"d-u2": None}, SETTLE, "the silent unit 2 is stale", quality="stale")
    t_stale = time.time()

    def grown():
        s = attempt_groups(sim, 2)
        return len(s) >= 2 and s[-1] - s[-2] >= DEAD_BACKOFF_GROWN
    wait_until("unit 2 is retried with a growing backoff: two tries at least %.0f s apart "
               "(its tries start at %s)" % (DEAD_BACKOFF_GROWN, ["%.2f" % (t - t_stale)
                                                                  for t in attempt_groups(sim, 2)]),
               grown, 20, every=0.1)
    t0 = time.time()
    qual_u1 = set()
    while time.time() < t0 + DEAD_WINDOW:
        tab = io_table(d)
        qual_u1.add((val(tab["d-u1"], "value"), txt(tab["d-u1"], "quality")))
        check(txt(tab["d-u2"], "quality") == "stale",
              "d-u2 (dead unit) quality %r" % txt(tab["d-u2"], "quality"))
        time.sleep(0.1)
    t1 = time.time()
    n1 = len(sim.reads(unit=1, since=t0, until=t1))
    k2 = len([s for s in attempt_groups(sim, 2) if t0 <= s < t1])
    check(qual_u1 == {(11, "good")}, "unit 1 while unit 2 is dead: %r" % qual_u1)
    check(n1 >= DEAD_UNIT_MIN_READS,
          "unit 1 was read %d times in %.1f s while unit 2 is dead (tried %d times in that "
          "window); at least %d expected (see DEAD_UNIT_MIN_READS)"
          % (n1, t1 - t0, k2, DEAD_UNIT_MIN_READS))
    print("dead unit: unit 1 read %d times in %.1f s (>= %d), unit 2 tried %d times in it"
          % (n1, t1 - t0, DEAD_UNIT_MIN_READS, k2))

    time.sleep(max(0.0, t_stale + DEAD_OBSERVE - time.time()))
    t_end = time.time()
    starts = [s for s in attempt_groups(sim, 2) if s >= t_stale - 1]
    gaps = [b - a for a, b in zip(starts, starts[1:])] + [t_end - starts[-1]]
    check(max(gaps) <= MAX_ATTEMPT_GAP,
          "unit 2's backoff should be capped at %.0f s: gaps between its tries (the last "
          "one up to now) %s s, the largest over %.1f s"
          % (BACKOFF_CAP_S, ["%.2f" % g for g in gaps], MAX_ATTEMPT_GAP))
    print("dead unit: tries on unit 2 over %.0f s start %s s apart (cap %.0f s)"
          % (t_end - t_stale, ["%.2f" % g for g in gaps[:-1]], BACKOFF_CAP_S))
    bp = d.points("mb-dead")
    check((val(bp, "errorCountTimeout") or 0) >= 1
          and (val(bp, "errorCount") or 0) >= (val(bp, "errorCountTimeout") or 0),
          "mb-dead: errorCountTimeout %r, errorCount %r: the dead unit's timeouts should be "
          "counted" % (val(bp, "errorCountTimeout"), val(bp, "errorCount")))

    t0 = time.monotonic()
    sim.set(silent_unit=None)
    wait_ios(d, {"d-u1": 11, "d-u2": 22}, RECOVER_MAX, "unit 2 answering again")
    print("dead unit back: good %.2f s after it answered again (bound %.1f s)"
          % (time.monotonic() - t0, RECOVER_MAX))


# --- bad answers and their counters ----------------------------------------------------

COUNTERS = ("errorCountTimeout", "errorCountCRC", "errorCountException",
            "errorCountMalformed")


def bad_answers(h, d, root):
    # (name, rtu?, control while faulty, counter, quality while faulty)
    scen = [
        ("tcp-short", False, {"garble": "short"}, "errorCountMalformed", "error"),
        ("tcp-fc", False, {"garble": "fc"}, "errorCountMalformed", "error"),
        ("tcp-tid", False, {"garble": "tid"}, "errorCountMalformed", "error"),
        ("tcp-truncate", False, {"garble": "truncate"}, "errorCountTimeout", "stale"),
        ("tcp-silent", False, {"silent_unit": 1}, "errorCountTimeout", "stale"),
        ("rtu-crc", True, {"garble": "crc"}, "errorCountCRC", "error"),
        ("rtu-short", True, {"garble": "short"}, "errorCountMalformed", "error"),
        ("rtu-tid", True, {"garble": "tid"}, "errorCountMalformed", "error"),
        ("rtu-truncate", True, {"garble": "truncate"}, "errorCountTimeout", "stale"),
    ]
    sims = {}
    for name, rtu, _, _, _ in scen:
        init = {1: {"hr": {0: 77}}}
        if rtu:
            pty = PtyPair(h, "pty-" + name)
            sims[name] = ModbusSim(h, rtu=pty.a, init=init, name="sim-" + name)
            make_bus(d, root, "mb-" + name, port=pty.b, retries=0)
        else:
            sims[name] = ModbusSim(h, tcp=0, init=init, name="sim-" + name)
            make_bus(d, root, "mb-" + name, uri="127.0.0.1:%d" % sims[name].port, retries=0)
        make_io(d, "mb-" + name, "g-" + name, 1, 0, "holdingRegister")
    # An address the device refuses (it has 1000 registers: exception 2, illegal data
    # address), beside a good IO on the same bus.
    exc_sim = ModbusSim(h, tcp=0, init={1: {"hr": {0: 77}}}, size=1000, name="sim-exception")
    make_bus(d, root, "mb-exception", uri="127.0.0.1:%d" % exc_sim.port, retries=0)
    make_io(d, "mb-exception", "g-exc-good", 1, 0, "holdingRegister")
    make_io(d, "mb-exception", "g-exc", 1, 5000, "holdingRegister", dataFormat="float64")

    good = {"g-" + s[0]: 77 for s in scen}
    good["g-exc-good"] = 77
    wait_ios(d, good, SETTLE, "the IOs of the bad-answer buses read")
    wait_ios(d, {"g-exc": None}, 5, "an IO at an address the device refuses", quality="error")

    for name, _, ctl, _, _ in scen:
        sims[name].set(garble_every=1, **ctl)
    t_on = time.monotonic()
    faulty = {"g-" + s[0]: s[4] for s in scen}
    reached, seen = {}, {}
    while time.monotonic() < t_on + 2.5:
        tab = io_table(d)
        for io, q in list(faulty.items()) + [("g-exc-good", "good")]:
            v, qq = val(tab[io], "value"), txt(tab[io], "quality")
            seen.setdefault(io, set()).add((v, qq))
            if qq == q and io not in reached:
                reached[io] = time.monotonic() - t_on
        time.sleep(0.05)
    for name, _, _, _, _ in scen:
        sims[name].set(garble=None, silent_unit=None)
    wait_ios(d, good, RECOVER_MAX, "every IO good again once the faults are off")

    errs = []
    for io, q in faulty.items():
        if io not in reached:
            errs.append("%s: never quality %r while its device answered badly (seen: %s)"
                        % (io, q, sorted(seen[io], key=str)))
        bad_values = {v for v, _ in seen[io]} - {77}
        if bad_values:
            errs.append("%s: value %s while the answers were bad; only 77 may be shown"
                        % (io, sorted(bad_values, key=str)))
    if seen["g-exc-good"] != {(77, "good")}:
        errs.append("g-exc-good (beside the refused address): %s" % seen["g-exc-good"])
    print("bad answers: fault quality reached after %s s"
          % {k: "%.2f" % v for k, v in sorted(reached.items())})

    # Counters, once they had the time to be written (at most once a second).
    def expected(name, counter):
        bad = len([r for r in sims[name].requests() if r["reply"].startswith("garble")
                   or r["reply"] == "silent"])
        return {c: (bad if c == counter else 0) for c in COUNTERS}, bad

    def counters_match():
        for name, _, _, counter, _ in scen:
            want, bad = expected(name, counter)
            bp = d.points("mb-" + name)
            got = {c: val(bp, c) or 0 for c in COUNTERS}
            if got != want or (val(bp, "errorCount") or 0) != bad:
                return False
        return True
    deadline = time.monotonic() + 2 * COUNTER_LAG + 1
    while not counters_match() and time.monotonic() < deadline:
        time.sleep(0.2)
    for name, _, _, counter, _ in scen:
        want, bad = expected(name, counter)
        bp = d.points("mb-" + name)
        got = {c: val(bp, c) or 0 for c in COUNTERS}
        total = val(bp, "errorCount") or 0
        line = "mb-%s: the sim sent %d bad answers; counters %s errorCount %d" % (
            name, bad, {k[10:]: v for k, v in got.items()}, total)
        print("counters: " + line)
        if bad == 0:
            errs.append("mb-%s: the sim sent no bad answer (test bug?)" % name)
        if got != want or total != bad:
            errs.append("%s; expected %s = %d, the others 0, errorCount %d"
                        % (line, counter, bad, bad))
        io_count = val(d.points("g-" + name), "errorCount") or 0
        if io_count != bad:
            errs.append("g-%s: the IO's errorCount is %d, expected %d (retries 0: every bad "
                        "answer is a failed read of it)" % (name, io_count, bad))

    # The exception, continuous: compare with the sim's count around the read.
    t_read = time.time()
    bp, ip = d.points("mb-exception"), d.points("g-exc")
    excs = [r["t"] for r in exc_sim.requests() if r["reply"].startswith("exception")]
    lo = len([t for t in excs if t < t_read - COUNTER_LAG - 0.5])
    hi = len(excs)
    for what, pts, keys in (("mb-exception", bp, ("errorCountException", "errorCount")),
                            ("g-exc", ip, ("errorCountException", "errorCount"))):
        for k in keys:
            v = val(pts, k) or 0
            if not lo <= v <= hi or v == 0:
                errs.append("%s: %s is %d; the device answered %d..%d exceptions by then"
                            % (what, k, v, lo, hi))
    for k in ("errorCountTimeout", "errorCountCRC", "errorCountMalformed"):
        if val(bp, k):
            errs.append("mb-exception: %s is %r, expected 0 (only exceptions)" % (k, val(bp, k)))
    print("counters: mb-exception: errorCountException %r, errorCount %r, g-exc %r (device "
          "sent %d..%d)" % (val(bp, "errorCountException"), val(bp, "errorCount"),
                           val(ip, "errorCountException"), lo, hi))

    # errorCountReset zeroes the counters.
    set_point(d, "mb-tcp-short", "errorCountReset", 1)
    deadline = time.monotonic() + 2 * COUNTER_LAG + 1
    while time.monotonic() < deadline:
        bp = d.points("mb-tcp-short")
        if all((val(bp, c) or 0) == 0 for c in COUNTERS + ("errorCount",)):
            break
        time.sleep(0.2)
    else:
        errs.append("mb-tcp-short: errorCountReset did not zero the counters: %s"
                    % {c: val(bp, c) for c in COUNTERS + ("errorCount",)})
    check(d.proc.alive(), "the daemon died:\n%s" % d.proc.stderr_tail())
    check(not errs, "bad answers (%d mismatches):\n  %s" % (len(errs), "\n  ".join(errs)))


def test():
    with Harness("modbus-faults") as h:
        d = Daemon(h, h.path("faults.db"), name="faults")
        root = root_of(d)
        kill_restart(h, d, root)
        dead_unit(h, d, root)
        bad_answers(h, d, root)
        check(d.proc.alive(), "the daemon died:\n%s" % d.proc.stderr_tail())
        d.stop()
        h.verify(d.db, expect=0)


if __name__ == "__main__":
    main(test)
