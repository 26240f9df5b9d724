"""Acceptance: the serial driver (drivers/serial, schema/serial.lua) over socat pty pairs.

It proves, against a real `sprig run` whose serial nodes are created through the API:
  - mcu mode, with a Python microcontroller (mcu_peer.py: COBS + CRC-16/KERMIT written
    here, independently of the C codec) on the other end:
      * sprig sends its points on connect (a non-ack frame whose payload is a JSON array
        holding the node's points), and the peer's ack is taken;
      * a frame of points from the peer lands on the node (origin = the node id) and is
        acknowledged with its seq; the same frame again (as if the ack were lost) is
        acknowledged again but not applied twice (the point's time and its history
        stay the same);
      * a point set through the API reaches the peer as a frame; when the peer does not
        acknowledge it, the same seq comes 3 more times (retries rises by 3) and then
        connected becomes 0; the next frame from the peer makes it 1 again;
      * a wrong CRC raises crcErrors; a frame cut before its CRC raises framingErrors;
        10000 non-zero bytes then a zero raise framingErrors; a good frame still works;
  - line mode with a Lua parser: good lines give points, a garbage line sets error (with
    the parser's line number) and parseErrors, rx counts lines; a parser that loops is
    stopped by its budget (parseErrors rises, no points) while the API keeps answering,
    and setting the good parser again restarts the driver and lines parse again (the
    "runs too long" text of the error point is only required once KNOWN_BUG_LOOP_MESSAGE
    below is fixed and set to False);
  - pulling the port: killing the socat of the MCU pair makes connected 0 within a few
    seconds; a new pair under the same names is reopened by the driver and points flow
    again (connected 1, a new frame applied and acknowledged).
Every wait is bounded; socat and sprig are owned by the Harness (killed by pid).
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402
from modbus_sim import PtyPair  # noqa: E402
import mcu_peer  # noqa: E402
from mcu_peer import McuPeer, points_frame  # noqa: E402

TIMEOUT_MS = 300
RESENDS = 3
# serial.c's ser_init passes `char name[80]` (its stack) to sprig_luabox_load, which keeps
# the pointer for its "NAME:LINE: runs too long" message: that message is built from freed
# stack, so the error point is often garbage and refused as invalid UTF-8. Set to False
# once fixed, to require "runs too long" in the error point.
KNOWN_BUG_LOOP_MESSAGE = False

PARSER = ('return function(line)\n'
          '  local t, h = line:match("T=([%d.-]+) H=([%d.-]+)")\n'
          '  if not t then error("not a T= H= line: " .. line) end\n'
          '  return {temperature = tonumber(t), humidity = tonumber(h)}\n'
          'end\n')
LOOPING = 'return function(line) while true do end end'


def pval(d, node, typ):
    p = d.points(node).get(typ)
    return None if p is None else p["value"]


def ptext(d, node, typ):
    p = d.points(node).get(typ)
    return None if p is None else p["text"]


def wait_value(d, node, typ, want, timeout, what=None):
    last = {}

    def ok():
        last["p"] = d.points(node).get(typ)
        return last["p"] is not None and last["p"]["value"] == want
    try:
        wait_until(what or "%s.%s == %r" % (node, typ, want), ok, timeout)
    except AssertionError:
        raise AssertionError("within %.1f s: %s.%s == %r (last point: %r)"
                             % (timeout, node, typ, want, last.get("p")))
    return last["p"]


def wait_counter_above(d, node, typ, base, timeout):
    last = {}

    def ok():
        v = pval(d, node, typ)
        last["v"] = v
        return v is not None and v > base
    try:
        wait_until("", ok, timeout)
    except AssertionError:
        raise AssertionError("within %.1f s: %s.%s above %r (last %r)"
                             % (timeout, node, typ, base, last.get("v")))
    return last["v"]


def history_count(d, node, typ):
    o = d.expect(200, "GET", "/v1/nodes/%s/history?type=%s" % (node, typ))
    return len(o["samples"])


def post_points(d, node, pts):
    return d.expect(200, "POST", "/v1/nodes/%s/points" % node, pts)


def mcu_part(h, d, root):
    pty = PtyPair(h, "mcu")
    peer = McuPeer(pty.b)
    try:
        d.expect(201, "POST", "/v1/nodes",
                 {"id": "mcu1", "type": "serial", "parent": root,
                  "points": [{"type": "port", "text": pty.a}, {"type": "mode", "text": "mcu"},
                             {"type": "timeout", "value": TIMEOUT_MS}]})
        # On connect sprig sends its points (and the peer acks them at once).
        _, f = peer.wait_frame(lambda f: f.error is None and not f.is_ack, 5,
                               "sprig's points on connect")
        pts = f.points()
        check(pts is not None and any(p.get("type") == "port" and p.get("text") == pty.a
                                      for p in pts),
              "the connect frame should be a JSON array holding the port point, got %r" % f)
        print("connect: sprig sent its points in frame seq %d (%d points): ok"
              % (f.seq, len(pts)))

        # A frame of points from the MCU.
        n0 = peer.count()
        peer.send(points_frame(1, [{"type": "temp", "value": 21.5}]))
        p1 = wait_value(d, "mcu1", "temp", 21.5, 5)
        check(p1["origin"] == "mcu1", "temp should have origin mcu1, got %r" % p1)
        peer.wait_frame(lambda f: f.is_ack and f.seq == 1, 3, "an ack of seq 1", n0)
        wait_value(d, "mcu1", "connected", 1, 3)
        hist1 = wait_until("temp's first sample in the history",
                           lambda: history_count(d, "mcu1", "temp"), 5)
        rx1 = wait_counter_above(d, "mcu1", "rx", 0, 3)
        print("mcu frame seq 1: temp 21.5 on mcu1 (origin mcu1), acked: ok")

        # The same frame again (our ack lost): acked again, applied once.
        n1 = peer.count()
        peer.send(points_frame(1, [{"type": "temp", "value": 21.5}]))
        peer.wait_frame(lambda f: f.is_ack and f.seq == 1, 3, "a second ack of seq 1", n1)
        wait_counter_above(d, "mcu1", "rx", rx1, 3)
        time.sleep(1.0)  # room for a second write to land (it must not)
        p2 = d.points("mcu1")["temp"]
        check(p2["time"] == p1["time"] and p2["value"] == 21.5,
              "a repeated seq must not be applied again: temp was %r, now %r" % (p1, p2))
        hist2 = history_count(d, "mcu1", "temp")
        check(hist2 == hist1, "temp history went from %d to %d samples on a repeated seq"
              % (hist1, hist2))
        print("repeated seq 1: acked again, temp not rewritten (time %s, %d samples): ok"
              % (p2["time"], hist2))

        # A point set through the API reaches the peer (acked).
        n2 = peer.count()
        post_points(d, "mcu1", [{"type": "setpoint", "value": 7}])
        _, f = peer.wait_frame(
            lambda f: not f.is_ack and f.error is None and any(
                p.get("type") == "setpoint" and p.get("value") == 7 for p in (f.points() or [])),
            5, "a frame carrying setpoint 7", n2)
        print("API setpoint 7 reached the peer in frame seq %d: ok" % f.seq)
        time.sleep(2 * TIMEOUT_MS / 1000.0)  # its ack is in; nothing pending

        # Not acked: resent 3 times with the same seq, then connected 0.
        retries0 = pval(d, "mcu1", "retries") or 0
        peer.auto_ack = False
        n3 = peer.count()
        post_points(d, "mcu1", [{"type": "setpoint", "value": 8}])
        i, f = peer.wait_frame(
            lambda f: not f.is_ack and f.error is None and any(
                p.get("type") == "setpoint" and p.get("value") == 8 for p in (f.points() or [])),
            5, "a frame carrying setpoint 8", n3)
        seq8 = f.seq
        wait_value(d, "mcu1", "connected", 0, (RESENDS + 3) * TIMEOUT_MS / 1000.0 + 3,
                   "connected 0 after %d unacked resends" % RESENDS)
        time.sleep(3 * TIMEOUT_MS / 1000.0)
        again = [g for g in peer.since(i + 1) if not g.is_ack]
        check(len(again) == RESENDS and all(g.seq == seq8 and g.wire == f.wire for g in again),
              "an unacked frame (seq %d) should come exactly %d more times, byte for byte; "
              "got %r" % (seq8, RESENDS, again))
        wait_until("retries at %d + %d" % (retries0, RESENDS),
                   lambda: pval(d, "mcu1", "retries") == retries0 + RESENDS, 3)
        print("unacked setpoint 8 (seq %d): resent %d times, retries %d -> %d, connected 0: ok"
              % (seq8, len(again), retries0, retries0 + RESENDS))
        peer.auto_ack = True

        # The next frame from the peer reconnects.
        peer.send(points_frame(2, [{"type": "temp", "value": 22}]))
        wait_value(d, "mcu1", "temp", 22, 5)
        wait_value(d, "mcu1", "connected", 1, 3)
        print("frame seq 2 after the disconnect: temp 22, connected 1: ok")

        # Corrupted frames.
        crc0 = pval(d, "mcu1", "crcErrors") or 0
        raw = bytearray(mcu_peer.raw_frame(3, b"", json.dumps([{"type": "temp",
                                                                 "value": 99}]).encode()))
        raw[-1] ^= 0x5A
        peer.send(mcu_peer.wire(bytes(raw)))
        wait_counter_above(d, "mcu1", "crcErrors", crc0, 3)
        check(pval(d, "mcu1", "temp") == 22, "a frame with a wrong CRC was applied")
        print("wrong CRC: crcErrors %r -> %r, not applied: ok"
              % (crc0, pval(d, "mcu1", "crcErrors")))

        fr0 = pval(d, "mcu1", "framingErrors") or 0
        good = mcu_peer.frame(4, b"", json.dumps([{"type": "temp", "value": 98}]).encode())
        cut = good[:-3]  # the encoded CRC (2 bytes) and the delimiter gone
        try:
            mcu_peer.cobs_decode(cut)
            bad_cobs = False
        except ValueError:
            bad_cobs = True
        check(bad_cobs, "test setup: the cut frame should not be valid COBS")
        peer.send(cut + b"\0")
        fr1 = wait_counter_above(d, "mcu1", "framingErrors", fr0, 3)
        check(pval(d, "mcu1", "temp") == 22, "a truncated frame was applied")
        print("frame cut before its CRC: framingErrors %r -> %r: ok" % (fr0, fr1))

        peer.send(b"\x41" * 10000 + b"\0")
        fr2 = wait_counter_above(d, "mcu1", "framingErrors", fr1, 5)
        print("10000 non-zero bytes then a zero: framingErrors %r -> %r: ok" % (fr1, fr2))

        n4 = peer.count()
        peer.send(points_frame(5, [{"type": "temp", "value": 23.25}]))
        wait_value(d, "mcu1", "temp", 23.25, 5)
        peer.wait_frame(lambda f: f.is_ack and f.seq == 5, 3, "an ack of seq 5", n4)
        print("a good frame after the bad ones: temp 23.25, acked: ok")

        # Pulling the port: socat dies.
        wait_value(d, "mcu1", "connected", 1, 3, "connected 1 before the pty is pulled")
        t0 = time.monotonic()
        pty.close()
        wait_value(d, "mcu1", "connected", 0, 5, "connected 0 once the pty is gone")
        print("socat killed: connected 0 after %.2f s: ok" % (time.monotonic() - t0))
        peer.close()
        for p in (pty.a, pty.b):
            if os.path.lexists(p):
                os.unlink(p)
        pty2 = PtyPair(h, "mcu")
        peer = McuPeer(pty2.b)
        peer.wait_frame(lambda f: f.error is None and not f.is_ack, 5,
                        "sprig's points on reconnect (the driver reopens the path)")
        n5 = peer.count()
        peer.send(points_frame(6, [{"type": "temp", "value": 24.5}]))
        wait_value(d, "mcu1", "temp", 24.5, 5)
        peer.wait_frame(lambda f: f.is_ack and f.seq == 6, 3, "an ack of seq 6", n5)
        wait_value(d, "mcu1", "connected", 1, 3)
        print("new pty pair: reopened, points sent again, temp 24.5 applied and acked, "
              "connected 1: ok")
    finally:
        peer.close()


def line_part(h, d, root):
    pty = PtyPair(h, "line")
    fd = os.open(pty.b, os.O_RDWR | os.O_NOCTTY)
    try:
        import termios
        import tty
        tty.setraw(fd, termios.TCSANOW)
        d.expect(201, "POST", "/v1/nodes",
                 {"id": "dev1", "type": "serial", "parent": root,
                  "points": [{"type": "port", "text": pty.a}, {"type": "mode", "text": "line"},
                             {"type": "timeout", "value": TIMEOUT_MS},
                             {"type": "parser", "text": PARSER}]})
        wait_value(d, "dev1", "connected", 1, 5, "the line-mode port open (connected 1)")
        os.write(fd, b"T=23.4 H=41\r\n")
        wait_value(d, "dev1", "temperature", 23.4, 5)
        os.write(fd, b"garbage here\n")
        wait_counter_above(d, "dev1", "parseErrors", 0, 3)
        os.write(fd, b"T=24 H=40\n")
        wait_value(d, "dev1", "temperature", 24, 5)
        wait_value(d, "dev1", "humidity", 40, 3)
        wait_value(d, "dev1", "rx", 3, 3)
        err = ptext(d, "dev1", "error")
        check(err is not None and "parser:3:" in err and "garbage here" in err,
              "error should name the parser's line 3 and the line, got %r" % err)
        check(pval(d, "dev1", "parseErrors") == 1,
              "parseErrors should be 1, got %r" % pval(d, "dev1", "parseErrors"))
        pt = d.points("dev1")["temperature"]
        check(pt["origin"] == "dev1", "temperature should have origin dev1, got %r" % pt)
        print("line mode: temperature 24, humidity 40, rx 3, parseErrors 1, error %r: ok" % err)

        # A parser that loops: every line is stopped by the budget, counted, dropped.
        post_points(d, "dev1", [{"type": "parser", "text": LOOPING}])
        wait_until("error cleared by the restart", lambda: ptext(d, "dev1", "error") == "", 5)
        pe0 = pval(d, "dev1", "parseErrors") or 0
        deadline = time.monotonic() + 10
        while True:
            os.write(fd, b"T=1 H=2\n" * 10)
            try:
                wait_until("", lambda: (pval(d, "dev1", "parseErrors") or 0) >= pe0 + 10, 2)
                break
            except AssertionError:
                check(time.monotonic() < deadline,
                      "a looping parser: parseErrors did not rise by 10 within 10 s "
                      "(%r -> %r, error %r)" % (pe0, pval(d, "dev1", "parseErrors"),
                                                ptext(d, "dev1", "error")))
        loop_err = ptext(d, "dev1", "error") or ""
        if not KNOWN_BUG_LOOP_MESSAGE:
            check("runs too long" in loop_err,
                  "a looping parser: error should say \"runs too long\", got %r" % loop_err)
        elif "runs too long" not in loop_err:
            print("KNOWN BUG (not failed): a looping parser's error point is %r, not \"... "
                  "runs too long ...\"; sprig's stderr says \"point error text is not valid "
                  "UTF-8\" %d times (serial.c hands luabox a stack buffer as the chunk name)"
                  % (loop_err, d.proc.stderr().count("not valid UTF-8")))
        t0 = time.monotonic()
        os.write(fd, b"T=1 H=2\n" * 20)
        worst = 0.0
        for _ in range(10):
            t1 = time.monotonic()
            d.status()
            worst = max(worst, time.monotonic() - t1)
            time.sleep(0.05)
        check(worst < 3.0, "GET /v1/status took %.2f s while the parser looped" % worst)
        check(pval(d, "dev1", "temperature") == 24, "a looping parser produced points")
        print("looping parser: lines dropped (parseErrors %r -> %r), error %r, GET /v1/status "
              "answered (slowest %.3f s) during 20 looping lines: ok"
              % (pe0, pval(d, "dev1", "parseErrors"), ptext(d, "dev1", "error"), worst))
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))  # let the queued lines drain

        # The good parser again: the driver restarts and lines parse again.
        post_points(d, "dev1", [{"type": "parser", "text": PARSER}])
        wait_until("error cleared by the restart", lambda: ptext(d, "dev1", "error") == "", 5)
        deadline = time.monotonic() + 10
        while pval(d, "dev1", "temperature") != 25.5:
            os.write(fd, b"T=25.5 H=38\n")
            check(time.monotonic() < deadline,
                  "after the good parser was set again, no temperature 25.5 within 10 s "
                  "(temperature %r, error %r)" % (pval(d, "dev1", "temperature"),
                                                  ptext(d, "dev1", "error")))
            time.sleep(0.5)
        wait_value(d, "dev1", "humidity", 38, 3)
        print("good parser again: temperature 25.5, humidity 38: ok")
    finally:
        os.close(fd)


def test():
    with Harness("serial") as h:
        d = Daemon(h, h.path("serial.db"), "--rules", "off", name="serial")
        root = d.status()["root"]
        mcu_part(h, d, root)
        line_part(h, d, root)
        check(d.proc.alive(), "sprig run died\n%s" % d.proc.stderr_tail())
        d.stop()
        h.verify(h.path("serial.db"), expect=0)


if __name__ == "__main__":
    main(test)
