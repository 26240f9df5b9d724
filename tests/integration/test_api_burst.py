"""Acceptance: a burst of half-sent requests does not take the HTTP API down (issue 14).

One daemon (no demo), then, all on 127.0.0.0/8:
  - burst: 2,000 connections from 127.0.0.1 in batches of 200, each sending half a request
    (`GET /v1/status HTTP/1.1` and a Host line, no blank line) and closed at once; then a
    GET /v1/status from 127.0.0.1 must be answered within 5 s (the time to the first answer
    is printed; before the fix the API stayed silent for a minute per 256 such connections);
  - one address at its limit: 300 half-sent requests held open from 127.0.0.1; the server
    keeps at most 64 of them and closes the rest, a new connection from 127.0.0.1 is closed
    unanswered, while 127.0.0.2 is answered within 5 s; once they are closed, 127.0.0.1 is
    answered again;
  - a request sent whole and then half-closed (SHUT_WR) gets its answer, then the server
    closes the connection (it does not wait for a timeout);
  - 64 event streams from one address, closed by their client with no event since: the
    address can open 64 new ones within 5 s (the old ones gave their slots back);
  - timeouts, watched during all of the above: a slowloris (half a request, then nothing)
    is closed by the server after the 10 s request timeout (bound: 30 s, and not before 5 s);
    so is a kept-alive connection left idle after its answer; an open /v1/events stream,
    idle for longer than that timeout, stays open and still gets the next event.
SIGTERM exits 0 and `sprig store verify` passes.

Every socket is closed and the daemon stopped (by pid) on the way out; every wait is
bounded in time and count.
"""
import http.client
import select
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import Harness, check, main, wait_until
from test_api import Daemon, Sse

PARTIAL = b"GET /v1/status HTTP/1.1\r\nHost: x\r\n"
BURST, BATCH = 2000, 200
HOLD = 300
PER_ADDR_MAX = 64  # README: How the server limits connections
REQUEST_TIMEOUT = 10.0  # idem
ANSWER_BOUND = 5.0


def status_from(port, src, timeout):
    """GET /v1/status on a fresh connection from source address src; the status, or None
    when the connection is refused, closed or silent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(src, 0))
    try:
        conn.request("GET", "/v1/status")
        r = conn.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def first_answer(port, src, bound):
    """Tries GET /v1/status from src until it is answered 200 or bound seconds pass.
    Returns (seconds to the answer or None, attempts)."""
    t0 = time.monotonic()
    attempts = 0
    while time.monotonic() - t0 < bound and attempts < 1000:
        attempts += 1
        left = bound - (time.monotonic() - t0)
        if status_from(port, src, max(0.2, min(1.0, left))) == 200:
            return time.monotonic() - t0, attempts
        time.sleep(0.02)
    return None, attempts


def open_half(port, n, src="127.0.0.1", within=5.0):
    """n sockets from src, connected (bounded wait) and each sent PARTIAL; returns them
    (the caller closes them) and how many got the bytes out."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setblocking(False)
            s.bind((src, 0))
            s.connect_ex(("127.0.0.1", port))
        pending = {s.fileno(): s for s in socks}
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        sent = 0
        deadline = time.monotonic() + within
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(200):
                poller.unregister(fd)
                try:
                    pending.pop(fd).send(PARTIAL)
                    sent += 1
                except OSError:
                    pass  # refused or reset: the server is at its limit for src
        return socks, sent
    except BaseException:
        for s in socks:
            s.close()
        raise


def closed_by_server(s):
    """True when the server has closed (or reset) s; never blocks."""
    try:
        return s.recv(4096, socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, socket.timeout):
        return False
    except OSError:
        return True


class Watched:
    """A socket the server is expected to close by itself; records when it did."""

    def __init__(self, what, sock):
        self.what = what
        self.sock = sock
        sock.setblocking(False)  # a socket with a timeout would wait that long in recv
        self.t0 = time.monotonic()
        self.closed_after = None

    def poll(self):
        if self.closed_after is None and closed_by_server(self.sock):
            self.closed_after = time.monotonic() - self.t0
        return self.closed_after is not None


def burst(d):
    t0 = time.monotonic()
    sent = 0
    for b in range(BURST // BATCH):
        socks, n = open_half(d.port, BATCH)
        sent += n
        for s in socks:
            s.close()
    spent = time.monotonic() - t0
    took, attempts = first_answer(d.port, "127.0.0.1", ANSWER_BOUND)
    check(took is not None,
          "after %d half-sent requests (%d got their bytes out) closed at once, GET /v1/status "
          "from 127.0.0.1 got no answer within %.0f s (%d attempts)\n%s"
          % (BURST, sent, ANSWER_BOUND, attempts, d.proc.stderr_tail()))
    print("burst: %d connections with half a request, opened and closed in %.2f s; GET "
          "/v1/status answered %.3f s later (attempt %d)" % (BURST, spent, took, attempts))


def one_address_at_its_limit(d):
    socks, _ = open_half(d.port, HOLD)
    try:
        def count():
            return sum(1 for s in socks if closed_by_server(s))

        wait_until(lambda: "the server closed %d of %d connections from 127.0.0.1, expected "
                   "at least %d" % (count(), HOLD, HOLD - PER_ADDR_MAX),
                   lambda: count() >= HOLD - PER_ADDR_MAX, timeout=ANSWER_BOUND)
        closed = count()
        refused = status_from(d.port, "127.0.0.1", 3.0)
        check(refused is None, "127.0.0.1 holds %d connections, above its limit of %d: a new "
              "one was answered %r" % (HOLD - closed, PER_ADDR_MAX, refused))
        took, attempts = first_answer(d.port, "127.0.0.2", ANSWER_BOUND)
        check(took is not None, "with 127.0.0.1 at its limit, 127.0.0.2 got no answer within "
              "%.0f s (%d attempts)" % (ANSWER_BOUND, attempts))
        print("one address at its limit: of %d half-sent requests from 127.0.0.1 the server "
              "kept %d and closed %d; 127.0.0.2 answered in %.3f s"
              % (HOLD, HOLD - closed, closed, took))
    finally:
        for s in socks:
            s.close()
    took, attempts = first_answer(d.port, "127.0.0.1", ANSWER_BOUND)
    check(took is not None, "127.0.0.1 closed its connections but got no answer within %.0f s "
          "(%d attempts)" % (ANSWER_BOUND, attempts))


def open_streams(port, n, src, within):
    """n GET /v1/events from src, each on its own connection; returns the sockets (the caller
    closes them) and how many got a 200 head within `within` seconds."""
    socks, ok = [], 0
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=within,
                                         source_address=(src, 0))
            socks.append(s)
            try:
                s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                pass  # refused: src is at its limit
        deadline = time.monotonic() + within
        for s in socks:
            data = b""
            while b"\r\n\r\n" not in data and time.monotonic() < deadline:
                s.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    b = s.recv(4096)
                except OSError:
                    break
                if not b:
                    break
                data += b
            ok += data.startswith(b"HTTP/1.1 200 ")
        return socks, ok
    except BaseException:
        for s in socks:
            s.close()
        raise


def streams_released(d):
    """Event streams whose clients left give their slots back, events or not."""
    src = "127.0.0.4"
    socks, ok = open_streams(d.port, PER_ADDR_MAX, src, ANSWER_BOUND)
    for s in socks:
        s.close()
    check(ok == PER_ADDR_MAX, "%d event streams from %s: only %d opened"
          % (PER_ADDR_MAX, src, ok))
    t0, attempts = time.monotonic(), 0
    while True:
        attempts += 1
        socks, ok = open_streams(d.port, PER_ADDR_MAX, src, ANSWER_BOUND)
        for s in socks:
            s.close()
        took = time.monotonic() - t0
        if ok == PER_ADDR_MAX or took > ANSWER_BOUND or attempts >= 20:
            break
        time.sleep(0.2)
    check(ok == PER_ADDR_MAX, "%d event streams from %s were closed by their client, with no "
          "event since: %.0f s later only %d of %d new ones opened (the old ones still hold the "
          "address's slots)" % (PER_ADDR_MAX, src, took, ok, PER_ADDR_MAX))
    print("%d event streams closed by their client: their slots free again (%d attempt%s, "
          "%.3f s)" % (PER_ADDR_MAX, attempts, "" if attempts == 1 else "s", took))


def half_closed_request(d):
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        data, t0 = b"", time.monotonic()
        eof = False
        while time.monotonic() - t0 < 5 and not eof:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                b = b""
            eof = b == b""
            data += b
        check(data.startswith(b"HTTP/1.1 200 "), "a whole request then SHUT_WR: expected a "
              "200, got %r" % data[:100])
        check(eof, "a whole request then SHUT_WR: answered, but the connection was still open "
              "5 s later")
    finally:
        s.close()
    print("a whole request then SHUT_WR: answered, then closed by the server")


def test():
    with Harness("api-burst") as h:
        d = Daemon(h, h.path("burst.db"), name="burst")
        root = d.status()["root"]
        socks, watched, sse = [], [], None
        try:
            slow = socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                            source_address=("127.0.0.3", 0))
            socks.append(slow)
            slow.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            watched.append(Watched("a slowloris (half a request, then nothing)", slow))
            idle = socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                            source_address=("127.0.0.3", 0))
            socks.append(idle)
            idle.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
            head = idle.recv(65536)
            check(head.startswith(b"HTTP/1.1 200 "), "keep-alive request: %r" % head[:100])
            watched.append(Watched("a kept-alive connection idle after its answer", idle))
            sse = Sse(d.port, "/v1/events?type=burst")
            sse_t0 = time.monotonic()
            check(sse.status == 200, "GET /v1/events: %d" % sse.status)

            # between the steps too, so that an early close is seen when it happens
            for step in (burst, one_address_at_its_limit, half_closed_request,
                         streams_released):
                step(d)
                for w in watched:
                    w.poll()
            for w in watched:
                wait_until("the server closes %s within 30 s" % w.what, w.poll,
                           timeout=max(0.5, 30 - (time.monotonic() - w.t0)), every=0.1)
                check(w.closed_after >= 5, "%s was closed after %.1f s: the request timeout "
                      "is %.0f s" % (w.what, w.closed_after, REQUEST_TIMEOUT))
                print("%s: closed by the server after %.1f s" % (w.what, w.closed_after))
            time.sleep(max(0.0, REQUEST_TIMEOUT + 3 - (time.monotonic() - sse_t0)))
            d.expect(200, "POST", "/v1/nodes/%s/points" % root, [{"type": "burst", "value": 1}])
            ev = sse.next(5)
            check(ev is not None and ev[1]["points"][0]["type"] == "burst",
                  "an event stream idle for %.0f s: no event within 5 s of a write (%r)"
                  % (time.monotonic() - sse_t0, ev))
            print("an event stream idle for %.1f s: still open, got the next event"
                  % (ev[0] - sse_t0))
        finally:
            if sse is not None:
                sse.close()
            for s in socks:
                s.close()
        d.stop()
        h.verify(d.db, expect=0)


if __name__ == "__main__":
    main(test)
