"""Shared helpers for sprig's integration tests (standard library only).

Every test script runs as `/usr/bin/python3 test_X.py PATH_TO_SPRIG`. A test uses one
`Harness` (a context manager): it owns a temp directory and every process the test
starts, and on exit, pass or fail, kills what is still running (by pid, then waits) and
removes the directory. Every wait here is bounded by a deadline.
"""
import calendar
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback

DEMO_GENERATORS = ("demo-temp", "demo-pump", "demo-level", "demo-flow")

# The node types the tests use beside the shipped ones (a type no schema declares is
# refused): `sprig run ... *SCHEMA_ARGS` loads them.
TEST_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schema_test")
SCHEMA_ARGS = ("--schema", os.path.normpath(TEST_SCHEMA))


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    """Fails the test with msg (a sentence saying what was expected and what happened)."""
    if not cond:
        raise TestFailure(msg)


def free_port():
    """A loopback TCP port nobody listens on right now (the kernel's choice): for a server
    to start on, or for a client to find nobody at."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_until(what, fn, timeout, every=0.05):
    """Polls fn() every `every` s until it returns something true; returns it, or fails
    naming `what` after timeout seconds (`what` may be a function, called then, so the
    message shows the state at the end)."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            check(False, "within %.1f s: %s" % (timeout, what() if callable(what) else what))
        time.sleep(every)


def kill_pid(p, pid):
    """SIGKILL by pid and reap the Popen p (bounded); for cleanup."""
    if p.poll() is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def rfc3339_ns(s):
    """'2026-11-27T22:06:35.312531271Z' -> int64 nanoseconds since the epoch, exactly."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{9})Z", s)
    if m is None:
        raise TestFailure("time %r is not RFC 3339 UTC with 9 fraction digits" % s)
    y, mo, d, h, mi, sec, frac = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(sec), 0, 0, 0))
    return secs * 1_000_000_000 + int(frac)


def same_value(printed, stored):
    """--json values come from cJSON 1.7.15, whose printer keeps 15 significant digits
    when they read back within DBL_EPSILON (so 73.20527140299478 prints as
    73.2052714029948): compare printed values with a relative 1e-13, never bit-exact."""
    return abs(printed - stored) <= 1e-13 * max(1.0, abs(stored))


def sprig_binary():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: %s PATH_TO_SPRIG\n" % sys.argv[0])
        sys.exit(2)
    path = os.path.abspath(sys.argv[1])
    if not os.access(path, os.X_OK):
        sys.stderr.write("%s: sprig binary %s is not executable\n" % (sys.argv[0], path))
        sys.exit(2)
    return path


class PeerLog:
    """What the real peers (broker.py, pg.py, nats.py) share: their process's log file,
    self.log_path, written through the handle self._log (None once closed), read back for
    failure messages; and the harness's cleanup of a process (self.p, self.pid) with its
    subscribers (self._subs)."""

    def close(self):
        """Harness cleanup: kills the subscribers and the process by pid, closes the log."""
        for s in self._subs:
            s.close()
        if self.p is not None:
            kill_pid(self.p, self.pid)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_from(self, offset):
        if self._log is not None:
            self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log(self):
        return self._log_from(0)

    def log_tail(self, n=15):
        return "\n".join(self.log().splitlines()[-n:])


class Proc:
    """A long-running `sprig` process: stdout is read line by line by a thread, stderr
    goes to a file in the test's directory."""

    def __init__(self, harness, args, name):
        self.harness = harness
        self.args = args
        self.name = name
        self.err_path = os.path.join(harness.dir, "%s.stderr" % name)
        self._err = open(self.err_path, "wb")
        self._cond = threading.Condition()
        self._lines = []
        self._partial = b""
        self._eof = False
        self.p = subprocess.Popen(
            [harness.sprig] + args,
            cwd=harness.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        self.pid = self.p.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        f = self.p.stdout
        try:
            while True:
                b = f.readline()
                if not b:
                    break
                with self._cond:
                    if b.endswith(b"\n"):
                        self._lines.append(b[:-1].decode("utf-8", "replace"))
                    else:
                        self._partial = b  # only the last line can be cut off (SIGKILL)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def lines(self):
        with self._cond:
            return list(self._lines)

    def line_count(self):
        with self._cond:
            return len(self._lines)

    def wait_for(self, pred, timeout, what):
        """Waits until pred(lines) is true; fails with `what` after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if pred(self._lines):
                    return
                left = deadline - time.monotonic()
                if left <= 0 or (self._eof and not pred(self._lines)):
                    break
                self._cond.wait(min(left, 0.2))
        rc = self.p.poll()
        raise TestFailure(
            "%s: %s did not happen within %.1f s (process %s; %d stdout lines; last: %r)\n"
            "stderr tail:\n%s"
            % (self.name, what, timeout,
               "still running" if rc is None else "exited with %d" % rc,
               len(self._lines), self._lines[-3:], self.stderr_tail()))

    def alive(self):
        return self.p.poll() is None

    def stderr(self):
        self._err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_tail(self, n=15):
        return "\n".join(self.stderr().splitlines()[-n:])

    def send(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Waits for exit (bounded), then for the reader to see EOF; returns the code."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s (pid %d) did not exit within %.1f s\nstderr tail:\n%s"
                              % (self.name, self.pid, timeout, self.stderr_tail()))
        self._reader.join(timeout=10)
        check(not self._reader.is_alive(),
              "%s: stdout did not reach EOF within 10 s of exit" % self.name)
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig and waits for the exit code."""
        self.send(sig)
        return self.wait(timeout)

    def kill(self):
        """SIGKILL by pid and reap; for cleanup."""
        kill_pid(self.p, self.pid)
        self._reader.join(timeout=5)

    def close(self):
        self.kill()
        try:
            self.p.stdout.close()
        except Exception:
            pass
        self._err.close()


class Harness:
    def __init__(self, name):
        self.name = name
        self.sprig = sprig_binary()
        self.dir = None
        self.procs = []
        self._n = 0

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="sprig-it-%s-" % self.name)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.close()
        if self.dir is not None:
            if os.environ.get("SPRIG_IT_KEEP"):
                sys.stderr.write("kept %s\n" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def start(self, *args, name=None):
        self._n += 1
        args = list(args)
        if args and args[0] == "run" and not any(a.startswith("--listen") for a in args):
            # A daemon the test does not talk HTTP to takes a free port, so tests never
            # collide with each other or with a gateway already on 127.0.0.1:8118.
            args += ["--listen", "127.0.0.1:0"]
        p = Proc(self, args, name or "sprig-%d" % self._n)
        self.procs.append(p)
        return p

    def run(self, *args, timeout=30):
        """Runs sprig to completion (bounded); returns a CompletedProcess with text output."""
        try:
            return subprocess.run([self.sprig] + list(args), cwd=self.dir,
                                  stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, text=True, errors="replace")
        except subprocess.TimeoutExpired:
            raise TestFailure("sprig %s did not finish within %d s" % (" ".join(args), timeout))

    def verify(self, db, *extra, expect=None):
        r = self.run("store", "verify", "--db", db, *extra)
        if expect is not None:
            check(r.returncode == expect,
                  "sprig store verify --db %s %s: expected exit %d, got %d\nstdout:\n%s\n"
                  "stderr:\n%s" % (db, " ".join(extra), expect, r.returncode, r.stdout,
                                   r.stderr))
        return r


class PeerHarness(Harness):
    """A Harness without a sprig binary, for a peer module's own self-check and command-line
    modes (pg.py, nats.py): the same temp directory and process ownership, no argv."""

    def __init__(self, name):
        self.name = name
        self.sprig = None
        self.dir = None
        self.procs = []
        self._n = 0


def db_connect(path, readonly=True):
    """A sqlite3 connection; read-only by default (mode=ro through a URI)."""
    if readonly:
        return sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    return sqlite3.connect(path, timeout=10)


def db_query(path, sql, args=()):
    c = db_connect(path)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def db_exec(path, sql, args=()):
    c = db_connect(path, readonly=False)
    try:
        with c:
            n = c.execute(sql, args).rowcount
        return n
    finally:
        c.close()


def parse_json_lines(lines, allow_garbage=False):
    """Splits --json output into (points, durable batch numbers). Fails on any line that
    is not a JSON object unless allow_garbage."""
    points, durable = [], []
    for i, ln in enumerate(lines):
        try:
            o = json.loads(ln)
        except ValueError:
            if allow_garbage:
                continue
            raise TestFailure("--json output line %d is not JSON: %r" % (i + 1, ln))
        check(isinstance(o, dict), "--json output line %d is not an object: %r" % (i + 1, ln))
        if "durable" in o:
            durable.append(o["durable"])
        else:
            for k in ("node", "type", "key", "time", "value", "text", "tombstone", "origin",
                      "batch"):
                check(k in o, "--json point line %d lacks %r: %r" % (i + 1, k, ln))
            points.append(o)
    return points, durable


def is_demo_value(o):
    return "up" not in o and o["type"] == "value" and o["node"] in DEMO_GENERATORS


def main(fn):
    """Runs fn(); prints PASS or the failure, exits 0 or 1."""
    name = os.path.basename(sys.argv[0])
    t0 = time.monotonic()
    try:
        fn()
    except TestFailure as e:
        sys.stdout.flush()
        sys.stderr.write("FAIL %s: %s\n" % (name, e))
        sys.exit(1)
    except Exception:
        sys.stdout.flush()
        sys.stderr.write("ERROR %s:\n%s" % (name, traceback.format_exc()))
        sys.exit(1)
    print("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
    sys.exit(0)
