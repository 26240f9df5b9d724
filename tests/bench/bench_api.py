"""Benchmark of the HTTP API against the core write path (figures, not a test; run by
hand, never by ctest).

In one run:
  (a) runs BENCH_WRITE (build/bench_write) and takes its write-path figure (writes/s
      through check, HLC, merge, hashes, store + history, bus; until durable);
  (b) starts `sprig run --db TMP --listen 127.0.0.1:0 --quiet`, creates 100 nodes, then 4
      client threads (one keep-alive connection each) POST /v1/nodes/{id}/points batches
      of 1,000 points (one node per request, 1,000 distinct keys, explicit increasing
      times; each node written by one thread only, so nothing is stale) for about 10 s;
      each answer (200 once durable) must say {"accepted": 1000, "stale": 0}. The bodies
      are built before the clock starts, so Python's JSON work is not measured;
  (c) with an SSE client on /v1/events?node=X, posts 200 single points to X one after
      another and measures POST sent -> its event read (median, p95);
then prints the three figures together and the ratio API points/s / core write path.
Every process is stopped by pid; every wait is bounded.

usage: python3 tests/bench/bench_api.py PATH_TO_SPRIG PATH_TO_BENCH_WRITE [SECONDS]
"""
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

NODES = 100
THREADS = 4
BATCH = 1000
LAT_POSTS = 200
# The tests' node types (the "sensor" nodes written here): a type no schema declares is refused.
SCHEMA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                       "schema_test"))
LISTEN_RE = re.compile(r"api: listening on http://127\.0\.0\.1:(\d+)")
WRITE_RE = re.compile(r"write path \([^)]*\):\s*([0-9.]+) writes/s")


def die(msg):
    sys.stderr.write("bench_api: %s\n" % msg)
    sys.exit(1)


def rfc3339(ns):
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%09dZ" % frac


class Conn:
    """A keep-alive connection; reconnects once if the server closed it between requests."""

    def __init__(self, port, timeout=60):
        self.port, self.timeout = port, timeout
        self.c = None

    def request(self, method, path, body=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port,
                                                    timeout=self.timeout)
            try:
                self.c.request(method, path, body=body,
                               headers={"Content-Type": "application/json"})
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 1:
                    raise

    def expect(self, status, method, path, body=None):
        st, data = self.request(method, path, body)
        if st != status:
            raise RuntimeError("%s %s: expected %d, got %d %r" % (method, path, status, st,
                                                                   data[:200]))
        return json.loads(data.decode("utf-8")) if data else None

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


class Daemon:
    def __init__(self, sprig, d):
        self.err_path = os.path.join(d, "sprig.stderr")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen([sprig, "run", "--db", os.path.join(d, "bench.db"),
                                   "--listen", "127.0.0.1:0", "--quiet", "--schema", SCHEMA],
                                  cwd=d,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=self.err)
        self.pid = self.p.pid
        deadline = time.monotonic() + 15
        while True:
            with open(self.err_path, "rb") as f:
                m = LISTEN_RE.search(f.read().decode("utf-8", "replace"))
            if m:
                self.port = int(m.group(1))
                return
            if self.p.poll() is not None:
                die("sprig run exited with %d before listening:\n%s"
                    % (self.p.returncode, self.stderr_tail()))
            if time.monotonic() > deadline:
                die("no \"api: listening\" line within 15 s:\n%s" % self.stderr_tail())
            time.sleep(0.05)

    def stderr_tail(self):
        with open(self.err_path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-15:])

    def stop(self):
        """SIGTERM by pid, bounded wait, then SIGKILL by pid; returns the exit code."""
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                return self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(timeout=10)
                return None
        return self.p.returncode

    def close(self):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.err.close()


class Sse:
    """GET /v1/events read by a thread; each event's data (parsed) and the monotonic time
    its last line was read go into a queue."""

    def __init__(self, port, path):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            die("GET %s: %d %r" % (path, self.resp.status, self.resp.read()[:200]))
        self.conn.sock.settimeout(None)
        self.q = queue.Queue()
        self.closed = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        data = []
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if data:
                        self.q.put((time.monotonic(), "\n".join(data)))
                    data = []
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        except Exception:
            pass
        if not self.closed:
            self.q.put((time.monotonic(), None))

    def next(self, timeout):
        try:
            t, data = self.q.get(timeout=timeout)
        except queue.Empty:
            return None
        if data is None:
            die("the event stream ended")
        return t, json.loads(data)

    def close(self):
        self.closed = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self.conn.close()
        self.t.join(timeout=5)


def core_rate(bench_write):
    t = time.monotonic()
    try:
        r = subprocess.run([bench_write], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=300)
    except subprocess.TimeoutExpired:
        die("%s did not finish within 300 s" % bench_write)
    if r.returncode != 0:
        die("%s exited with %d:\n%s" % (bench_write, r.returncode, r.stderr[-2000:]))
    m = WRITE_RE.search(r.stdout)
    if m is None:
        die("no write-path figure in the output of %s:\n%s" % (bench_write, r.stdout))
    print("(a) %s (%.0f s):" % (bench_write, time.monotonic() - t))
    for ln in r.stdout.splitlines():
        print("    " + ln)
    return float(m.group(1))


def bodies(node_ids, per_node, t0):
    """Pre-built bodies: for each node, per_node batches of BATCH points with keys k0..k999
    and times increasing from batch to batch (so every point is accepted)."""
    out = []
    keys = ['{"type":"value","key":"k%d","time":"' % j for j in range(BATCH)]
    for b in range(per_node):
        for n in node_ids:
            base = t0 + b * 1_000_000
            sec, frac = divmod(base, 1_000_000_000)
            head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            # frac + j stays below 1 s: base is a whole millisecond and j < 1,000,000.
            pts = ["%s%s.%09dZ\",\"value\":%d.%d}" % (keys[j], head, frac + j, b, j)
                   for j in range(BATCH)]
            out.append((n, ("[" + ",".join(pts) + "]").encode("ascii")))
    return out


def api_rate(port, root, seconds):
    c = Conn(port)
    ids = ["bench-%03d" % i for i in range(NODES)]
    for nid in ids:
        c.expect(201, "POST", "/v1/nodes", {"type": "sensor", "parent": root, "id": nid})
    c.close()
    # Enough batches for `seconds` at up to ~250,000 points/s (about 21 MB of
    # bodies a second); each node is one thread's.
    per_node = max(2, int(seconds * 250_000 / BATCH / NODES) + 1)
    t0 = time.time_ns() - 3600 * 1_000_000_000
    t0 -= t0 % 1_000_000
    work = [bodies(ids[k::THREADS], per_node, t0) for k in range(THREADS)]
    done = [0] * THREADS
    errors = []
    start = threading.Event()
    stop_at = [0.0]
    finish = [0.0] * THREADS

    def client(k):
        cc = Conn(port)
        try:
            start.wait(timeout=30)
            for n, body in work[k]:
                if time.monotonic() >= stop_at[0]:
                    break
                o = cc.expect(200, "POST", "/v1/nodes/%s/points" % n, body)
                if o != {"accepted": BATCH, "stale": 0}:
                    raise RuntimeError("POST to %s: %r" % (n, o))
                done[k] += BATCH
                finish[k] = time.monotonic()
        except Exception as e:
            errors.append("client %d: %s" % (k, e))
        finally:
            cc.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(THREADS)]
    for t in threads:
        t.start()
    t_start = time.monotonic()
    stop_at[0] = t_start + seconds
    start.set()
    for t in threads:
        t.join(timeout=seconds + 120)
        if t.is_alive():
            die("a client thread did not finish within %d s" % (seconds + 120))
    if errors:
        die("; ".join(errors))
    elapsed = max(finish) - t_start
    total = sum(done)
    print("(b) %d clients, %d nodes, %d-point POSTs: %d points in %.1f s" %
          (THREADS, NODES, BATCH, total, elapsed))
    return total / elapsed


def latency(port, root):
    c = Conn(port)
    c.expect(201, "POST", "/v1/nodes", {"type": "sensor", "parent": root, "id": "lat"})
    sse = Sse(port, "/v1/events?node=lat")
    lat = []
    try:
        for i in range(LAT_POSTS):
            v = 1000.0 + i + 0.25
            t = time.monotonic()
            c.expect(200, "POST", "/v1/nodes/lat/points", [{"type": "temp", "value": v}])
            deadline = time.monotonic() + 10
            while True:
                ev = sse.next(max(0.0, deadline - time.monotonic()))
                if ev is None:
                    die("no event within 10 s for post %d" % i)
                pts = ev[1].get("points") or []
                if ev[1].get("node") == "lat" and pts and pts[0].get("value") == v:
                    lat.append((ev[0] - t) * 1000)
                    break
    finally:
        sse.close()
        c.close()
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
    print("(c) SSE POST-to-event latency over %d single-point posts" % len(lat))
    return statistics.median(lat), p95


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    sprig, bench_write = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    for p in (sprig, bench_write):
        if not os.access(p, os.X_OK):
            die("%s is not executable" % p)
    core = core_rate(bench_write)
    d = tempfile.mkdtemp(prefix="sprig-bench-api-")
    daemon = None
    try:
        daemon = Daemon(sprig, d)
        c = Conn(daemon.port)
        root = c.expect(200, "GET", "/v1/status")["root"]
        c.close()
        api = api_rate(daemon.port, root, seconds)
        med, p95 = latency(daemon.port, root)
        c = Conn(daemon.port)
        st = c.expect(200, "GET", "/v1/status")
        c.close()
        rc = daemon.stop()
        if rc != 0:
            die("sprig run exited with %s on SIGTERM:\n%s" % (rc, daemon.stderr_tail()))
    finally:
        if daemon is not None:
            daemon.close()
        shutil.rmtree(d, ignore_errors=True)
    print()
    print("bench_api: core write path %.0f writes/s; API %.0f points/s (%d clients, "
          "%d-point POSTs, %d nodes, answered once durable); SSE POST-to-event latency "
          "median %.2f ms, p95 %.2f ms" % (core, api, THREADS, BATCH, NODES, med, p95))
    print("  ratio API points/s / core write path: %.2f" % (api / core))
    print("  (store: %d batches, %d commit errors)" % (st["store"]["batches"],
                                                      st["store"]["commitErrors"]))


if __name__ == "__main__":
    main()
