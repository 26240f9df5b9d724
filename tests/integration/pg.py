"""A real, throwaway PostgreSQL 15 server for sprig's PostgreSQL store and fleet tests
(DESIGN.md section 11), standard library only, run with /usr/bin/python3.

`Postgres(h)` is owned by a `sprigtest.Harness`: its cluster (data directory, Unix socket
directory, server log) lives in the harness directory, and it joins `h.procs`, so when the
harness exits, pass or fail, the server is stopped (fast shutdown, then SIGKILL) by pid and
reaped, and the directory is removed with it.

    pg = Postgres(h)          # initdb, start, a role and a database: pg.uri
    pg.psql("SELECT 1")       # psql over the Unix socket; returns stdout ("1\\n")
    pg.stop()                 # fast shutdown by pid, waits; returns the exit code
    pg.start()                # again, same port and data (a restart)
    pg.kill9()                # SIGKILL the postmaster and its children (a crash)

The cluster comes from Debian's postgresql-15 (`initdb`, then `postgres -D DATA` started
directly, so `pid` is the postmaster's). It listens on 127.0.0.1 on a free port and on a
socket in its own directory, nowhere else. fsync, synchronous_commit and full_page_writes
are on (the crash tests test durability); shared_buffers is 16MB and max_connections 100,
so it starts in well under a second; timezone is UTC. `settings={...}` adds or overrides
postgresql.conf lines (e.g. max_locks_per_transaction: a session-level advisory lock
takes a slot of the shared lock table, which holds max_locks_per_transaction *
max_connections = 6,400 locks by default, so a test with more devices than that per
server must raise it).

`uri` is postgresql://sprig:PASSWORD@127.0.0.1:PORT/sprig: a LOGIN role (not a superuser)
that owns the database, with a random password checked by SCRAM-SHA-256 over TCP. Over
the Unix socket every role is trusted, which is what `psql()` uses (as that role by
default, as the superuser `postgres` with user="postgres").

Running as root (PostgreSQL refuses to: initdb and postgres exit at once), the cluster
runs as the Debian user `postgres` through `setpriv --reuid --regid --clear-groups`: the
cluster's directory is chowned to it, and the harness directory gets mode 0711 so that
user can reach its own directory inside (others can pass through it but not list it).
root deletes the postgres-owned files at the end like any other. Not running as root,
the server runs as the current user.

Stopping: `stop()` sends SIGINT, PostgreSQL's fast shutdown (what `pg_ctl -m fast`
sends). SIGTERM would be its "smart" shutdown, which waits for every client session to
end and so hangs while a sprig under test holds one open. `kill9()` freezes the
postmaster (SIGSTOP), lists its children, and SIGKILLs it and each of them by pid: the
whole server dies at once as in a crash, and the next `start()` runs crash recovery.
After a crash the killed children are re-parented to pid 1, which reaps them within a few
seconds; they hold nothing meanwhile (zombies). A cluster that ends unclean (killed and
not restarted) leaves its small SysV shared memory segment behind: close() removes it
(its key is in postmaster.pid), and dynamic shared memory lives in the data directory
(dynamic_shared_memory_type = mmap), not in /dev/shm, so nothing outlives the harness.

The server is started with `setpriv --pdeathsig SIGQUIT`: if the thread that started it
dies (a test process SIGKILLed by a ctest timeout), the server gets an immediate
shutdown instead of living on. So start it from a thread that outlives it (the main
thread).

Command-line modes:

    /usr/bin/python3 pg.py --run [--timeout SECONDS] -- PROGRAM ARGS...

starts a cluster, runs PROGRAM with SPRIG_TEST_PG_URI set to its uri (for a C unit test
against a real server, from ctest), stops the cluster by pid, removes its files, and exits
with the program's exit code (128+N if a signal N ended it; 1 with a message if the
cluster could not start or the program ran longer than SECONDS, default 600).

    /usr/bin/python3 pg.py

checks itself: a table's row survives a restart and a kill -9, the role's password is
checked over TCP, and --run passes on the uri and the exit code.
"""
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sprigtest import PeerHarness, PeerLog, TestFailure, check, free_port, kill_pid  # noqa: E402


PG_BIN = "/usr/lib/postgresql/15/bin"
SERVER_USER = "postgres"      # the Debian user the server runs as when we are root
SUPERUSER = "postgres"        # the cluster's bootstrap superuser (initdb -U)
START_TIMEOUT = 20            # seconds from exec to "ready" in postmaster.pid
STOP_TIMEOUT = 20             # seconds a fast shutdown may take
TOOL_TIMEOUT = 60             # seconds initdb may take
PSQL_TIMEOUT = 30             # seconds one psql() may take, by default
RUN_TIMEOUT = 600             # seconds --run lets its program run, by default
SOCKET_PATH_MAX = 107         # sun_path holds 108 bytes with the NUL


def _quote(v):
    """A postgresql.conf value: numbers and booleans bare, everything else quoted."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, int):
        return str(v)
    return "'%s'" % str(v).replace("'", "''")


def _proc_stat(pid):
    """(state, ppid) of a process from /proc, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = s[s.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _children(pid):
    """The pids whose parent is pid (a scan of /proc)."""
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st is not None and st[1] == pid:
                kids.append(int(name))
    return kids


def _dead(pid):
    st = _proc_stat(pid)
    return st is None or st[0] in ("Z", "X")


def _clean_env():
    """The environment without PG* variables (a PGSERVICE, PGSSLMODE or PGPASSWORD in
    the caller's environment would change what psql connects to)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


class Postgres(PeerLog):
    """A PostgreSQL 15 cluster on a free loopback port, owned by harness h (see the module
    docstring). port: a fixed port instead of a free one; settings: postgresql.conf
    additions; start=False: initdb only (the role and database are made by the first
    start())."""

    def __init__(self, h, port=None, settings=None, start=True, user="sprig", dbname="sprig"):
        self.h = h
        self.port = port or free_port()
        n = sum(1 for p in h.procs if isinstance(p, Postgres))
        self.name = "pg%d" % n if n else "pg"
        self.dir = h.path(self.name)
        self.data = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "sock")
        self.log_path = os.path.join(self.dir, "server.log")
        self.user = user
        self.dbname = dbname
        self.password = secrets.token_hex(16)
        self.p = None
        self.pid = None
        self.start_seconds = None     # how long the last start() took
        self._log = None
        self._created = False
        self._setpriv = ["setpriv"]   # + the user switch when we are root
        sock = os.path.join(self.socket_dir, ".s.PGSQL.%d" % self.port)
        check(len(sock.encode()) <= SOCKET_PATH_MAX,
              "%s: socket path %s is longer than %d bytes" % (self.name, sock,
                                                              SOCKET_PATH_MAX))
        h.procs.append(self)
        self._initdb(settings or {})
        if start:
            self.start()

    # --- cluster -------------------------------------------------------------------------

    @property
    def uri(self):
        return "postgresql://%s:%s@127.0.0.1:%d/%s" % (self.user, self.password, self.port,
                                                       self.dbname)

    def _initdb(self, settings):
        os.makedirs(self.socket_dir)
        if os.getuid() == 0:
            try:
                pw = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise TestFailure("%s: running as root, the server needs the user %r "
                                  "(Debian's postgresql-common makes it)"
                                  % (self.name, SERVER_USER))
            # The server user must reach its directory through the harness's (mode 0700).
            mode = os.stat(self.h.dir).st_mode & 0o777
            os.chmod(self.h.dir, mode | 0o011)
            for d in (self.dir, self.socket_dir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            self._setpriv += ["--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                              "--clear-groups"]
        os.chmod(self.dir, 0o700)
        os.chmod(self.socket_dir, 0o700)
        # --no-sync: a fresh cluster need not survive a power cut, only our kills.
        args = self._setpriv + [
            "--", os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", SUPERUSER,
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync", "--no-instructions"]
        log = os.path.join(self.dir, "initdb.log")
        with open(log, "wb") as f:
            try:
                r = subprocess.run(args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=f,
                                   stderr=f, timeout=TOOL_TIMEOUT, env=_clean_env())
            except subprocess.TimeoutExpired:
                raise TestFailure("%s: initdb did not finish within %d s"
                                  % (self.name, TOOL_TIMEOUT))
        if r.returncode != 0:
            with open(log, "rb") as f:
                out = f.read().decode("utf-8", "replace")
            raise TestFailure("%s: initdb exited %d\n%s" % (self.name, r.returncode, out))
        conf = {
            "listen_addresses": "127.0.0.1",
            "port": self.port,
            "unix_socket_directories": self.socket_dir,
            "password_encryption": "scram-sha-256",
            "fsync": True,
            "synchronous_commit": True,
            "full_page_writes": True,
            "shared_buffers": "16MB",
            "max_connections": 100,
            "dynamic_shared_memory_type": "mmap",
            "huge_pages": False,
            "timezone": "UTC",
            "log_timezone": "UTC",
            "log_line_prefix": "%m [%p] %q%u@%d ",
        }
        conf.update(settings)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# written by tests/integration/pg.py\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, _quote(v)))

    # --- process -------------------------------------------------------------------------

    def running(self):
        return self.p is not None and self.p.poll() is None

    def _pid_file(self):
        """The lines of postmaster.pid ([] when there is none)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def start(self, timeout=START_TIMEOUT):
        """Starts the postmaster on self.port and self.data and waits (bounded) until
        postmaster.pid names it and says "ready" (after crash recovery, if it follows a
        kill9); the first start also makes the role and the database. Returns self."""
        if self.running():
            raise TestFailure("%s is already running (pid %d)" % (self.name, self.pid))
        if self._log is None:
            self._log = open(self.log_path, "ab")
        offset = os.path.getsize(self.log_path)
        t0 = time.monotonic()
        self.p = subprocess.Popen(
            self._setpriv + ["--pdeathsig=SIGQUIT", "--", os.path.join(PG_BIN, "postgres"),
                             "-D", self.data],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            env=_clean_env())
        self.pid = self.p.pid   # setpriv execs the postmaster: the same pid
        deadline = t0 + timeout
        while True:
            lines = self._pid_file()
            if len(lines) >= 8 and lines[0] == str(self.pid) and lines[7].strip() == "ready":
                break
            if self.p.poll() is not None:
                raise TestFailure("%s exited %d at start on port %d\nserver log:\n%s"
                                  % (self.name, self.p.returncode, self.port,
                                     self._log_from(offset)))
            if time.monotonic() > deadline:
                self._kill_tree()
                raise TestFailure("%s (pid %d) was not ready within %.0f s on port %d\n"
                                  "server log:\n%s" % (self.name, self.pid, timeout,
                                                       self.port, self._log_from(offset)))
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - t0
        if not self._created:
            self.psql('CREATE ROLE "%s" LOGIN PASSWORD \'%s\';\n'
                      'CREATE DATABASE "%s" OWNER "%s";\n'
                      % (self.user, self.password, self.dbname, self.user),
                      user=SUPERUSER, db="postgres")
            self._created = True
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """Fast shutdown (SIGINT by pid: open sessions are ended, a shutdown checkpoint is
        written), then waits for the exit; returns its code (None if it was not running).
        A server still running after timeout seconds is killed and the test fails."""
        if self.p is None or self.p.poll() is not None:
            return None if self.p is None else self.p.returncode
        os.kill(self.pid, signal.SIGINT)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_tree()
            raise TestFailure("%s (pid %d) did not exit within %.0f s of a fast shutdown\n"
                              "server log tail:\n%s"
                              % (self.name, self.pid, timeout, self.log_tail()))

    def kill9(self):
        """A crash: SIGKILL for the postmaster and every process it had forked, by pid.
        Returns once all of them are dead."""
        check(self.running(), "%s.kill9(): the server is not running" % self.name)
        self._kill_tree()

    def _kill_tree(self):
        if self.p is None or self.p.poll() is not None:
            return
        # Frozen, the postmaster can neither fork nor reap: the list of its children
        # stays true (an exited child stays a zombie with its pid) until it is killed.
        os.kill(self.pid, signal.SIGSTOP)
        kids = _children(self.pid)
        os.kill(self.pid, signal.SIGKILL)
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_pid(self.p, self.pid)
        deadline = time.monotonic() + 10
        while not all(_dead(k) for k in kids):
            if time.monotonic() > deadline:
                raise TestFailure("%s: processes %s still alive 10 s after SIGKILL"
                                  % (self.name, [k for k in kids if not _dead(k)]))
            time.sleep(0.01)

    def close(self):
        """Harness cleanup: a fast shutdown (bounded), else SIGKILL; then the shared memory
        segment of a cluster that ended unclean."""
        if self.running():
            try:
                self.stop(timeout=10)
            except TestFailure:
                pass
        lines = self._pid_file()
        if len(lines) >= 7 and lines[6].split():
            # Left by a kill9 not followed by a start: nobody is attached any more.
            try:
                subprocess.run(["ipcrm", "-M", lines[6].split()[0]], capture_output=True,
                               timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- clients -------------------------------------------------------------------------

    def psql(self, sql, user=None, db=None, timeout=PSQL_TIMEOUT):
        """Runs sql (one or more statements, each committed on its own unless it says
        BEGIN) with psql over the Unix socket, as user (default: the test role; "postgres"
        for the superuser) on db (default: the test database), stopping at the first
        error. Returns stdout: rows unaligned, columns split by "|", no headers or command
        tags. A failure or a run longer than timeout seconds fails the test, naming the SQL."""
        user = user or self.user
        db = db or self.dbname
        args = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.socket_dir, "-p", str(self.port), "-U", user, "-d", db, "-f", "-"]
        try:
            r = subprocess.run(args, input=sql, capture_output=True, text=True,
                               errors="replace", timeout=timeout, env=_clean_env())
        except subprocess.TimeoutExpired:
            raise TestFailure("%s: psql as %s on %s did not finish within %.0f s: %s"
                              % (self.name, user, db, timeout, sql.strip()))
        check(r.returncode == 0, "%s: psql as %s on %s exited %d: %s\nSQL: %s"
              % (self.name, user, db, r.returncode, r.stderr.strip(), sql.strip()))
        return r.stdout


# --- command line ------------------------------------------------------------------------------

def _run(argv):
    """pg.py --run [--timeout SECONDS] -- PROGRAM ARGS...: see the module docstring."""
    usage = "usage: pg.py --run [--timeout SECONDS] -- PROGRAM ARGS...\n"
    timeout = RUN_TIMEOUT
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--timeout" and i + 1 < len(argv):
            try:
                timeout = float(argv[i + 1])
            except ValueError:
                sys.stderr.write(usage)
                return 2
            i += 2
        else:
            sys.stderr.write(usage)
            return 2
    cmd = argv[i + 1:]
    if not cmd:
        sys.stderr.write(usage)
        return 2

    # A SIGTERM (ctest, a shell) ends the run through the harness's cleanup too.
    def on_term(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_term)

    with PeerHarness("pg-run") as h:
        try:
            pg = Postgres(h)
        except TestFailure as e:
            sys.stderr.write("pg.py: could not start a PostgreSQL 15 cluster for %s: %s\n"
                             % (cmd[0], e))
            return 1
        env = dict(os.environ, SPRIG_TEST_PG_URI=pg.uri)
        try:
            # --pdeathsig: the program dies with us, as the server does.
            p = subprocess.Popen(["setpriv", "--pdeathsig=SIGKILL", "--"] + cmd, env=env,
                                 stdin=subprocess.DEVNULL)
        except OSError as e:
            sys.stderr.write("pg.py: cannot run %s: %s\n" % (cmd[0], e))
            return 127
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_pid(p, p.pid)
            sys.stderr.write("pg.py: %s ran longer than %.0f s and was killed\n"
                             % (cmd[0], timeout))
            rc = 1
        finally:
            kill_pid(p, p.pid)
        try:
            pg.stop()
        except TestFailure as e:
            sys.stderr.write("pg.py: %s\n" % e)
            rc = rc or 1
    return rc if rc >= 0 else 128 - rc


# --- self-check ------------------------------------------------------------------------------

def _selftest():
    t_all = time.monotonic()
    with PeerHarness("pg") as h:
        t0 = time.monotonic()
        pg = Postgres(h)
        print("ok: initdb, start, role and database in %.2f s (start alone %.2f s), port %d"
              % (time.monotonic() - t0, pg.start_seconds, pg.port))
        check(pg.psql("SHOW fsync; SHOW listen_addresses; SHOW max_connections;")
              == "on\n127.0.0.1\n100\n", "settings: %r" % pg.psql("SHOW fsync;"))
        if os.getuid() == 0:
            owner = pwd.getpwuid(os.stat(pg.data).st_uid).pw_name
            check(owner == SERVER_USER, "data dir owned by %s" % owner)
            st = _proc_stat(pg.pid)
            check(st is not None, "postmaster pid %d not found" % pg.pid)
            with open("/proc/%d/status" % pg.pid) as f:
                uid = [ln.split()[1] for ln in f if ln.startswith("Uid:")][0]
            check(pwd.getpwuid(int(uid)).pw_name == SERVER_USER,
                  "postmaster runs as uid %s" % uid)
            print("ok: running as root, the server runs as %s" % SERVER_USER)

        # The role's password over TCP, with SCRAM; a wrong one is refused.
        psql = os.path.join(PG_BIN, "psql")
        r = subprocess.run([psql, "-X", "-A", "-t", pg.uri, "-c", "SELECT current_user"],
                           capture_output=True, text=True, timeout=PSQL_TIMEOUT,
                           env=_clean_env())
        check(r.returncode == 0 and r.stdout == "sprig\n",
              "psql over TCP with the uri: exit %d, %r %r" % (r.returncode, r.stdout, r.stderr))
        wrong = pg.uri.replace(pg.password, "0" * 32)
        r = subprocess.run([psql, "-X", wrong, "-c", "SELECT 1"], capture_output=True,
                           text=True, timeout=PSQL_TIMEOUT, env=_clean_env())
        check(r.returncode != 0 and "password authentication failed" in r.stderr,
              "a wrong password: exit %d, %r" % (r.returncode, r.stderr))
        check(pg.psql("SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'sprig';",
                      user=SUPERUSER) == "SCRAM-SHA-256$\n", "the role's password is not SCRAM")
        print("ok: %s accepted over TCP (SCRAM), a wrong password refused"
              % pg.uri.replace(pg.password, "***"))

        pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);\n"
                "INSERT INTO t VALUES (1, 'one');")
        check(pg.psql("SELECT id, v FROM t ORDER BY id;") == "1|one\n", "row 1 not read back")
        print("ok: a table, a row written and read back")

        port, pid = pg.port, pg.pid
        check(pg.stop() == 0, "postgres did not exit 0 on a fast shutdown")
        check(not pg._pid_file(), "postmaster.pid left after a clean stop")
        pg.start()
        check(pg.port == port and pg.pid != pid, "restart: port %d pid %d" % (pg.port, pg.pid))
        check(pg.psql("SELECT id, v FROM t ORDER BY id;") == "1|one\n",
              "row 1 lost by a restart")
        print("ok: restart on port %d in %.2f s, row kept" % (port, pg.start_seconds))

        pg.psql("INSERT INTO t VALUES (2, 'two');")
        kids = _children(pg.pid)
        check(len(kids) >= 3, "postmaster %d has children %s" % (pg.pid, kids))
        pg.kill9()
        check(all(_dead(k) for k in kids + [pg.pid]), "kill9 left processes alive")
        t0 = time.monotonic()
        pg.start()
        check(pg.psql("SELECT id, v FROM t ORDER BY id;") == "1|one\n2|two\n",
              "rows after kill -9: %r" % pg.psql("SELECT id, v FROM t ORDER BY id;"))
        check("database system was interrupted" in pg.log(), "no crash recovery in the log")
        print("ok: kill -9 of %d processes, crash recovery and start in %.2f s, both rows kept"
              % (len(kids) + 1, time.monotonic() - t0))

        # The shared memory left by a crash is removed by close().
        pg.kill9()
        key = pg._pid_file()[6].split()[0]
        pg.close()
        r = subprocess.run(["ipcs", "-m"], capture_output=True, text=True, timeout=10)
        check("0x%08x" % int(key) not in r.stdout, "segment %s left:\n%s" % (key, r.stdout))
        print("ok: a crashed cluster's shared memory segment is removed at cleanup")
        dir = h.dir

    check(not os.path.exists(dir), "harness directory %s left behind" % dir)

    # --run: the uri reaches the program, its exit code comes back, the cluster goes.
    script = ('import os, subprocess, sys\n'
              'u = os.environ["SPRIG_TEST_PG_URI"]\n'
              'r = subprocess.run(["%s", "-X", "-A", "-t", u, "-c", "SELECT 6 * 7"],\n'
              '                   capture_output=True, text=True, timeout=30)\n'
              'sys.exit(3 if r.stdout == "42\\n" else 4)\n' % psql)
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--run", "--", sys.executable,
                        "-c", script], capture_output=True, text=True, timeout=60)
    check(r.returncode == 3, "pg.py --run: exit %d (3: the program reached the server)\n%s"
          % (r.returncode, r.stderr))
    print("ok: --run passes SPRIG_TEST_PG_URI and the program's exit code")
    print("PASS pg.py self-check (%.1f s)" % (time.monotonic() - t_all))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        sys.exit(_run(sys.argv[2:]))
    if len(sys.argv) > 1:
        sys.stderr.write("usage: pg.py [--run [--timeout SECONDS] -- PROGRAM ARGS...]\n")
        sys.exit(2)
    try:
        _selftest()
    except TestFailure as e:
        sys.stderr.write("FAIL pg.py: %s\n" % e)
        sys.exit(1)
