"""Acceptance: GET /v1/nodes/{id}/history (paged history of one point series) against its
contract, over real HTTP (standard library only).

  - a 100,000-sample series (type "value", key "0", explicit strictly increasing times 1 ms
    apart starting about an hour ago, distinct exact values) is written in 100 POSTs of
    1,000 points; every POST answers {"accepted": 1000, "stale": 0};
  - the series is walked oldest first in pages of 997, following `next`, WHILE a writer
    thread keeps posting later samples to the same series, and the walk lasts long enough
    (>= 3.5 s) that the bulk index (filled every 2 s) moves during it, so pages come from
    the index, from the unindexed tail and from both. Then the writer stops and the walk
    continues until `next` is empty. Asserted: the whole walk is exactly the series as
    written: each of the first 100,000 samples seen exactly once, then the writer's
    samples as a gapless run, times strictly increasing, times byte for byte (9 fraction
    digits), values exact, key/text/tombstone/origin as defaulted; every page but the last
    holds exactly `limit` samples and a non-empty `next`, the last fewer (or none) and an
    empty `next`; no page repeats or skips (each page starts right after the previous);
  - order=desc over a from/to window (from on a sample time: inclusive; to between two
    samples) gives exactly the window's samples newest first, paged; order=desc with only
    `from` reaches the newest sample the writer wrote; order=asc over a small window with a
    large limit is one page with an empty `next`; a from with a +01:00 offset selects the
    same samples as the same instant in Z;
  - an unknown series is {"samples": [], "next": ""}; an unknown node 404;
  - 400 with {"error": sentence} for bad cursors (after=), bad limits, bad times (from=,
    to=), a bad order, a missing or bad type, a bad key;
  - contract checks collected (the rest still runs; the test fails at the end): to= the
    Unix epoch selects nothing (no sample is before it); a wrong method on the history
    endpoint is 405 as for every other known endpoint;
  - SIGTERM exits 0 and `sprig store verify` passes.
"""
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import SCHEMA_ARGS, Harness, TestFailure, check, db_query, main, rfc3339_ns
from test_api import Daemon, check_error, now_ns, ns_to_rfc3339

NODE = "hist1"
N = 100_000            # the first series, written before the walk
BATCH = 1000           # points per POST while filling
LIMIT = 997            # page size of the walk (not a divisor of anything here)
STEP = 1_000_000       # 1 ms between samples
W_BATCH = 25           # points per POST of the concurrent writer
W_MAX_BATCHES = 4000   # bound on the writer (100,000 further samples)
MIN_WALK_S = 3.5       # the bulk index is filled every 2 s: the walk outlasts one pass
PATH = "/v1/nodes/%s/history" % NODE


def value_of(i):
    """Distinct, not round doubles; exact through %.17g and back."""
    return (i * 7919 % 100003) / 13.0 - 3000.0625 + i * 1e-7


class Series:
    def __init__(self, t0):
        self.t0 = t0

    def time(self, i):
        return self.t0 + i * STEP

    def point(self, i):
        return {"type": "value", "key": "0", "time": ns_to_rfc3339(self.time(i)),
                "value": value_of(i)}

    def points(self, a, b):
        return [self.point(i) for i in range(a, b)]


def url(**q):
    return PATH + "?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)


def get_page(d, what, **q):
    """One page: checks the answer's shape, returns (samples, next)."""
    o = d.expect(200, "GET", url(**q), what=what, timeout=30)
    check(isinstance(o, dict) and set(o) == {"samples", "next"}
          and isinstance(o["samples"], list) and isinstance(o["next"], str),
          "%s: a history page must be {\"samples\": [...], \"next\": string}, got %r"
          % (what, str(o)[:300]))
    return o["samples"], o["next"]


def check_sample(s, ser, i, what):
    """The sample is exactly sample i of the series (every field, time byte for byte)."""
    want = ser.point(i)
    ok = (isinstance(s, dict)
          and set(s) == {"type", "key", "time", "value", "text", "tombstone", "origin"}
          and s["type"] == "value" and s["key"] == "0" and s["time"] == want["time"]
          and isinstance(s["value"], (int, float)) and not isinstance(s["value"], bool)
          and float(s["value"]) == want["value"]
          and s["text"] == "" and s["tombstone"] == 0 and s["origin"] == "")
    if not ok:
        raise TestFailure("%s: expected sample %d %r, got %r" % (what, i, want, s))


def index_of(s, ser, what):
    """The series index of a sample, from its time (exact multiple of STEP from t0)."""
    check(isinstance(s, dict) and isinstance(s.get("time"), str),
          "%s: not a sample: %r" % (what, s))
    t = rfc3339_ns(s["time"])
    i, r = divmod(t - ser.t0, STEP)
    check(r == 0 and i >= 0, "%s: sample time %s is not one of the series' times"
          % (what, s["time"]))
    return i


class Writer(threading.Thread):
    """Posts W_BATCH later samples at a time (indices from N up) until stopped; records how
    many were acknowledged (200, all accepted). Every request is bounded (timeout)."""

    def __init__(self, d, ser):
        super().__init__(daemon=True)
        self.d, self.ser = d, ser
        self.stop_ev = threading.Event()
        self.acked = 0          # samples N .. N + acked - 1 are durable
        self.error = None
        self.lock = threading.Lock()

    def run(self):
        try:
            for b in range(W_MAX_BATCHES):
                if self.stop_ev.is_set():
                    return
                a = N + b * W_BATCH
                o = self.d.expect(200, "POST", "/v1/nodes/%s/points" % NODE,
                                  self.ser.points(a, a + W_BATCH),
                                  what="writer batch %d" % b, timeout=30)
                check(o == {"accepted": W_BATCH, "stale": 0},
                      "writer batch %d: expected {accepted: %d, stale: 0}, got %r"
                      % (b, W_BATCH, o))
                with self.lock:
                    self.acked += W_BATCH
                time.sleep(0.005)
        except BaseException as e:  # re-raised by the main thread
            self.error = e

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=40)
        check(not self.is_alive(), "the writer thread did not stop within 40 s")
        if self.error is not None:
            raise self.error
        return self.acked


def indexed(db):
    rows = db_query(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'history_indexed'")
    return rows[0][0] if rows else 0


def fill(d, ser):
    t = time.monotonic()
    for b in range(N // BATCH):
        o = d.expect(200, "POST", "/v1/nodes/%s/points" % NODE,
                     ser.points(b * BATCH, (b + 1) * BATCH), what="fill batch %d" % b,
                     timeout=30)
        check(o == {"accepted": BATCH, "stale": 0},
              "fill batch %d: expected {accepted: %d, stale: 0}, got %r" % (b, BATCH, o))
    dt = time.monotonic() - t
    print("filled %d samples in %d POSTs: %.1f s (%.0f points/s)"
          % (N, N // BATCH, dt, N / dt))


def walk_asc(d, ser, writer):
    """The concurrent walk; returns (series indices seen in order, pages, series length)."""
    seen = []
    cursor = None
    frm = None
    pages = 0
    prev_last = None
    t_start = time.monotonic()
    idx_start = indexed(d.db)
    acked_at_start = writer.acked
    total = None
    idx_end = None
    first_pages = N // LIMIT + 1
    # Bound: the first N plus everything the writer can write, in pages, and a margin.
    for _ in range((N + W_MAX_BATCHES * W_BATCH) // LIMIT + 50):
        if total is None:
            # Pace the walk through the first N so that it spans a bulk index pass.
            due = t_start + MIN_WALK_S * min(pages, first_pages) / first_pages
            time.sleep(max(0.0, due - time.monotonic()))
        q = {"type": "value", "limit": LIMIT}
        if cursor is not None:
            q["after"] = cursor
        elif frm is not None:
            q["from"] = frm
        what = "asc walk page %d" % (pages + 1)
        samples, nxt = get_page(d, what, **q)
        pages += 1
        check(len(samples) <= LIMIT and (nxt == "" or len(samples) == LIMIT),
              "%s: %d samples (limit %d) with next %r: a page under the limit must end the "
              "walk (next \"\"), a full one must give a cursor"
              % (what, len(samples), LIMIT, nxt))
        for k, s in enumerate(samples):
            i = index_of(s, ser, "%s sample %d" % (what, k))
            expect = len(seen)
            if i != expect:
                kind = ("repeats sample %d" % i if i < expect
                        else "skips samples %d..%d" % (expect, i - 1))
                raise TestFailure(
                    "%s (after %d samples; the previous page ended at sample %s): position "
                    "%d %s; the walk must see every sample exactly once, in time order"
                    % (what, len(seen), prev_last, k, kind))
            check_sample(s, ser, i, "%s sample %d" % (what, k))
            seen.append(i)
        if samples:
            prev_last = seen[-1]
        if total is None and (len(seen) >= N + LIMIT or nxt == ""):
            # Past the first series and into the writer's samples (or caught up with the
            # writer): stop the writer, note what it wrote, and walk on to the end.
            check(len(seen) >= N, "%s: next is empty after %d samples; the series has at "
                  "least %d" % (what, len(seen), N))
            idx_end = indexed(d.db)
            total = N + writer.stop()
            print("asc walk: %d pages, %d samples in %.1f s while the writer posted "
                  "(%d samples acked at the start, %d at the end); history_indexed %d -> %d"
                  % (pages, len(seen), time.monotonic() - t_start, acked_at_start,
                     total - N, idx_start, idx_end))
            if nxt == "":
                # The walk had caught up: a short page gives no cursor, so go on from just
                # after the last sample's time (times are distinct).
                if len(seen) == total:
                    break
                frm = ns_to_rfc3339(ser.time(seen[-1]) + 1)
                cursor = None
                continue
        if nxt == "":
            break
        cursor = nxt
    else:
        raise TestFailure("the asc walk did not end within its page bound (%d pages, %d "
                          "samples)" % (pages, len(seen)))
    check(len(seen) == total,
          "the walk saw %d samples, the series has %d (the first %d and %d by the writer)"
          % (len(seen), total, N, total - N))
    check(idx_end != idx_start,
          "the bulk index did not move during the walk (history_indexed stayed %d): the "
          "walk did not exercise the index/tail merge as intended" % idx_start)
    return seen, pages, total


def walk(d, ser, what, **q):
    """Follows next from the first page; returns (series indices in order, pages)."""
    out, cursor, pages = [], None, 0
    for _ in range(400):
        qq = dict(q)
        if cursor is not None:
            qq["after"] = cursor
        samples, nxt = get_page(d, "%s page %d" % (what, pages + 1), **qq)
        pages += 1
        lim = q.get("limit", 1000)
        check(len(samples) <= lim and (nxt == "" or len(samples) == lim),
              "%s page %d: %d samples (limit %d) with next %r"
              % (what, pages, len(samples), lim, nxt))
        for k, s in enumerate(samples):
            i = index_of(s, ser, "%s page %d sample %d" % (what, pages, k))
            check_sample(s, ser, i, "%s page %d sample %d" % (what, pages, k))
            out.append(i)
        if nxt == "":
            return out, pages
        cursor = nxt
    raise TestFailure("%s: more than 400 pages" % what)


def first_mismatch(got, want):
    for k, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return "position %d: got sample %d, expected %d" % (k, a, b)
    return "lengths %d and %d" % (len(got), len(want))


def test_windows(d, ser, total):
    # desc over [from, to): from exactly on sample 20,000 (inclusive), to between samples
    # 45,000 and 45,001.
    lo, hi = 20_000, 45_000
    frm, to = ns_to_rfc3339(ser.time(lo)), ns_to_rfc3339(ser.time(hi) + STEP // 2)
    got, pages = walk(d, ser, "desc window", type="value", order="desc", limit=LIMIT,
                      **{"from": frm, "to": to})
    want = list(range(hi, lo - 1, -1))
    check(got == want, "desc over from=%s to=%s: expected samples %d down to %d (%d), got "
          "%d samples; %s" % (frm, to, hi, lo, len(want), len(got), first_mismatch(got, want)))
    print("desc window: %d samples newest first in %d pages: ok" % (len(got), pages))

    # desc with only from: the newest sample (the writer's last) comes first.
    lo = N - 5_000
    got, pages = walk(d, ser, "desc from", type="value", order="desc", limit=LIMIT,
                      **{"from": ns_to_rfc3339(ser.time(lo))})
    want = list(range(total - 1, lo - 1, -1))
    check(got == want, "desc from sample %d: expected samples %d down to %d, got %d samples;"
          " %s" % (lo, total - 1, lo, len(got), first_mismatch(got, want)))
    print("desc from: %d samples (up to the writer's last) in %d pages: ok"
          % (len(got), pages))

    # asc over a small window, one page; the same instant with an offset selects the same.
    lo, hi = 77_777, 77_877
    frm = ser.time(lo) - STEP // 3
    to = ser.time(hi) - STEP // 3          # samples lo .. hi - 1
    samples, nxt = get_page(d, "asc small window", type="value", limit=5000,
                            **{"from": ns_to_rfc3339(frm), "to": ns_to_rfc3339(to)})
    got = [index_of(s, ser, "asc small window") for s in samples]
    check(got == list(range(lo, hi)) and nxt == "",
          "asc window of 100 samples with limit 5000: expected samples %d..%d and next "
          "\"\", got %d samples (%s) and next %r"
          % (lo, hi - 1, len(got), got[:3], nxt))
    z = ns_to_rfc3339(frm)                    # ...THH:MM:SS.fffffffffZ
    sec, frac = divmod(frm, 1_000_000_000)
    plus1 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec + 3600)) + \
        ".%09d+01:00" % frac
    samples2, nxt2 = get_page(d, "asc small window, offset", type="value", limit=5000,
                              **{"from": plus1, "to": ns_to_rfc3339(to)})
    check(samples2 == samples and nxt2 == "",
          "from=%s and from=%s are the same instant but select %d and %d samples"
          % (z, plus1, len(samples), len(samples2)))

    # limit bounds are inclusive: 1 and 10000.
    samples, nxt = get_page(d, "limit=1", type="value", limit=1)
    check(len(samples) == 1 and nxt != "" and index_of(samples[0], ser, "limit=1") == 0,
          "limit=1: expected sample 0 and a next cursor, got %r next %r" % (samples, nxt))
    samples, nxt = get_page(d, "limit=10000", type="value", limit=10000)
    check(len(samples) == 10000 and nxt != ""
          and [index_of(s, ser, "limit=10000") for s in samples] == list(range(10000)),
          "limit=10000: expected samples 0..9999 and a next cursor, got %d" % len(samples))
    # the default page (no limit) is 1000
    samples, nxt = get_page(d, "no limit", type="value")
    check(len(samples) == 1000 and nxt != "",
          "no limit: expected a page of 1000 and a next cursor, got %d" % len(samples))
    # the cursor of the last sample gives an empty page with no next
    samples, nxt = get_page(d, "desc limit=1", type="value", order="desc", limit=1)
    check(len(samples) == 1 and index_of(samples[0], ser, "desc limit=1") == total - 1,
          "desc limit=1: expected the newest sample %d, got %r" % (total - 1, samples))
    samples, nxt = get_page(d, "asc after the newest", type="value", limit=10,
                            **{"from": ns_to_rfc3339(ser.time(total - 1))})
    check(len(samples) == 1 and nxt == "",
          "from the newest sample: expected it alone and next \"\", got %d and %r"
          % (len(samples), nxt))


def test_errors(d, root, problems):
    o = d.expect(200, "GET", PATH + "?type=nothing")
    check(o == {"samples": [], "next": ""},
          "an unknown series: expected {samples: [], next: \"\"}, got %r" % o)
    o = d.expect(200, "GET", PATH + "?type=value&key=other")
    check(o == {"samples": [], "next": ""},
          "an unknown key: expected {samples: [], next: \"\"}, got %r" % o)
    d.expect(404, "GET", "/v1/nodes/nope/history?type=value")
    d.expect(400, "GET", "/v1/nodes/bad%20id/history?type=value")
    bad = [
        ({}, "no type"),
        ({"type": ""}, "empty type"),
        ({"type": "bad type"}, "type with a space"),
        ({"type": "value", "key": "bad key"}, "key with a space"),
        ({"type": "value", "key": ""}, "empty key"),
        ({"type": "value", "order": "up"}, "order up"),
        ({"type": "value", "order": "DESC"}, "order DESC"),
        ({"type": "value", "order": ""}, "empty order"),
    ]
    for v in ("0", "-1", "10001", "abc", "", "1.5", "5x", "1e3", "99999999999999999999",
              "0x10"):
        bad.append(({"type": "value", "limit": v}, "limit %r" % v))
    for v in ("abc", "", "1.", ".1", "1", "1.0", "1.-2", "1.2.3", "1.2x", "x1.2", "1,2",
              "1.2 ", "1:2", "1.2.", "1..2", " 1.2", "+1.2", "\t1.2", "1. 2", "1.+2"):
        bad.append(({"type": "value", "after": v}, "after %r" % v))
    for v in ("yesterday", "", "2026-01-01", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z",
              "2026-01-01T25:00:00Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567890Z",
              "1969-12-31T23:59:59Z", "2026-01-01T00:00:00Zjunk", "2026-01-01T00:00:00+1:00",
              "1700000000", "2262-04-11T23:47:16.854775808Z", "2262-04-11T23:47:17Z"):
        for name in ("from", "to"):
            bad.append(({"type": "value", name: v}, "%s %r" % (name, v)))
    for q, what in bad:
        r = d.get(url(**q))
        check(r.status == 400, "GET %s (%s): expected 400, got %r" % (url(**q), what, r))
        check_error(r.json(), "GET %s (%s)" % (url(**q), what))
    print("history errors: %d bad queries answered 400: ok" % len(bad))

    # Collected contract checks (the test goes on; it fails at the end).
    r = d.get(url(type="value", to="1970-01-01T00:00:00Z"))
    if r.status != 200 or r.json() != {"samples": [], "next": ""}:
        n = len(r.json().get("samples", [])) if r.status == 200 else None
        problems.append("GET %s: no sample is before the Unix epoch, so the window is empty; "
                        "expected 200 {\"samples\": [], \"next\": \"\"}, got %s"
                        % (url(type="value", to="1970-01-01T00:00:00Z"),
                           "%d samples" % n if n is not None else repr(r)))
    # A cursor whose numbers do not fit in 64 bits was never given out: sscanf's %lld
    # (undefined behaviour on overflow; glibc saturates) must not turn it into a position.
    for v in ("1.99999999999999999999", "99999999999999999999.1",
              "-99999999999999999999.1"):
        r = d.get(url(type="value", after=v))
        if r.status != 400:
            problems.append("GET %s: a cursor with a number beyond 64 bits is not one the API "
                            "gave out; expected 400, got %d%s"
                            % (url(type="value", after=v), r.status,
                               " with %d samples" % len(r.json().get("samples", []))
                               if r.status == 200 else ""))
    r = d.get(url(type="value", to="1970-01-01T00:00:00.000000001Z"))
    check(r.status == 200 and r.json() == {"samples": [], "next": ""},
          "to one nanosecond after the epoch: expected an empty page, got %r" % r)
    # The largest time the format holds (int64 ns) is a time like any other.
    last = "2262-04-11T23:47:16.854775807Z"
    r = d.get(url(type="value", to=last))
    check(r.status == 200 and len(r.json()["samples"]) > 0,
          "to=%s (the last time an int64 of ns holds): expected 200 with samples, got %r"
          % (last, r))
    for m in ("POST", "DELETE", "PUT"):
        r = d.req(m, PATH + "?type=value", b"[]" if m in ("POST", "PUT") else None)
        if r.status != 405:
            problems.append("%s %s (a known endpoint, wrong method): expected 405, got %r"
                            % (m, PATH, r))


def test():
    with Harness("api-history") as h:
        d = Daemon(h, h.path("history.db"), *SCHEMA_ARGS, name="history")
        root = d.status()["root"]
        d.expect(201, "POST", "/v1/nodes", {"type": "sensor", "parent": root, "id": NODE})
        t0 = now_ns() - 3600 * 1_000_000_000
        t0 -= t0 % 1_000_000
        t0 += 123_457  # times that are not round
        ser = Series(t0)
        fill(d, ser)
        writer = Writer(d, ser)
        writer.start()
        try:
            seen, pages, total = walk_asc(d, ser, writer)
        finally:
            writer.stop_ev.set()
            writer.join(timeout=40)
        print("asc walk: %d samples (the first %d exactly once, then %d by the writer) in "
              "%d pages, strictly increasing, no repeat, no skip: ok"
              % (len(seen), N, total - N, pages))
        test_windows(d, ser, total)
        problems = []
        test_errors(d, root, problems)
        st = d.status()
        check(st["store"]["commitErrors"] == 0, "commit errors: %r" % st["store"])
        d.stop()
        h.verify(d.db, expect=0)
        check(not problems, "contract violations:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main(test)
