"""A real mosquitto broker for sprig's sync tests (DESIGN.md section 5), standard library
only, run with /usr/bin/python3.

`Broker(h, ...)` is owned by a `sprigtest.Harness`: its files (config, log, certificates,
password and ACL files) live in the harness directory, and it joins `h.procs`, so when the
harness exits, pass or fail, mosquitto and every mosquitto_sub this module started are
killed by pid and reaped, and the directory is removed with them.

    b = Broker(h)                            # plain: anonymous, mqtt://127.0.0.1:PORT
    b = Broker(h, tls=True)                  # mqtts, server cert for 127.0.0.1/localhost
    b = Broker(h, tls=True, require_certificate=True)   # and a client cert is required
    b = Broker(h, password=True)             # allow_anonymous false, users in b.users
    b = Broker(h, password=True, acl=True)   # plus `pattern readwrite sprig/%c/#`

The broker listens on a free loopback port (ENVIRONMENT.md, "Peers for tests": a config
file with `listener PORT 127.0.0.1`, `persistence false`, `set_tcp_nodelay true`).
`stop()` ends it with SIGTERM by pid and waits; `start()` brings it back on the same port
(a partition and its end). `pub()` and `sub_collect()` go through mosquitto_pub and
mosquitto_sub with the credentials of the mode (TLS files, the upstream user), so a test
can inject messages or watch topics as a third party.

Run directly (`/usr/bin/python3 broker.py`), it checks itself in every mode: messages pass
with the right credentials and are refused with wrong ones (no client certificate, a
certificate from the wrong CA, a client trusting the wrong CA, a wrong password, a topic
outside the client's ACL).
"""
import os
import pwd
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sprigtest import PeerLog, TestFailure, check, free_port, kill_pid  # noqa: E402


MOSQUITTO = "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else "mosquitto"
TOOL_TIMEOUT = 20  # seconds any one openssl / mosquitto_passwd / mosquitto_pub may take
UPSTREAM_USER = "upstream"
# Prefixes mosquitto_sub's formatted lines, apart from its -d lines (no @, % or \\ in it:
# -F gives them a meaning).
MSG_MARK = "=msg= "




def _run(args, what, input=None):
    try:
        r = subprocess.run(args, input=input, capture_output=True, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise TestFailure("%s: %s did not finish within %d s" % (what, args[0], TOOL_TIMEOUT))
    check(r.returncode == 0, "%s: %s exited %d\nstdout: %s\nstderr: %s"
          % (what, " ".join(args), r.returncode, r.stdout.decode("utf-8", "replace"),
             r.stderr.decode("utf-8", "replace")))
    return r


class Certs:
    """A test PKI made with openssl in DIR: a CA, a server certificate for 127.0.0.1 and
    localhost, a client certificate signed by the CA, and a second, unrelated ("wrong") CA
    with a client certificate of its own, for refusal tests. EC P-256 keys (fast to make);
    valid for 2 days."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.ca, self.ca_key = self._ca("ca", "sprig test CA")
        self.server_cert, self.server_key = self.make("server", "127.0.0.1", server=True)
        self.client_cert, self.client_key = self.make("client", "sprig-test-client")
        self.wrong_ca, self.wrong_ca_key = self._ca("wrong-ca", "sprig wrong CA")
        self.wrong_client_cert, self.wrong_client_key = self.make(
            "wrong-client", "sprig-test-client", wrong=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        key = self.path(name + ".key")
        _run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-out", key], "key " + name)
        os.chmod(key, 0o600)
        return key

    def _ca(self, name, cn):
        key = self._key(name)
        crt = self.path(name + ".crt")
        _run(["openssl", "req", "-x509", "-new", "-key", key, "-out", crt, "-days", "2",
              "-subj", "/CN=" + cn,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], "CA " + name)
        return crt, key

    def make(self, name, cn, server=False, wrong=False):
        """A key and a certificate with common name cn, signed by the CA (or by the wrong
        one); a server certificate names 127.0.0.1 and localhost. Returns (cert, key)."""
        key = self._key(name)
        csr = self.path(name + ".csr")
        crt = self.path(name + ".crt")
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyAgreement\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n")
            if server:
                f.write("extendedKeyUsage=serverAuth\n"
                        "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        _run(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + cn],
             "CSR " + name)
        ca, ca_key = (self.wrong_ca, self.wrong_ca_key) if wrong else (self.ca, self.ca_key)
        _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
              "-CAcreateserial", "-out", crt, "-days", "2", "-sha256", "-extfile", ext],
             "certificate " + name)
        return crt, key


class Sub:
    """A mosquitto_sub in the background (from Broker.sub_start): subscribed when it is
    returned (its SUBACK was seen), it collects up to n messages for at most `timeout`
    seconds. wait() returns the list of (topic, payload bytes)."""

    def __init__(self, broker, topic, n, timeout, args):
        self.broker = broker
        self.topic = topic
        self.n = n
        self.timeout = timeout
        self.msgs = []
        self._debug = []
        self._subscribed = threading.Event()
        self.p = subprocess.Popen(
            # stdbuf -oL: mosquitto_sub's -d lines (the SUBACK that says it is subscribed)
            # would otherwise sit in its stdio buffer until it exits.
            ["stdbuf", "-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1",
             "-p", str(broker.port), "--nodelay",
             "-q", "1", "-t", topic, "-C", str(n), "-W", str(max(1, int(round(timeout)))),
             "-F", MSG_MARK + "%t %x"] + args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pid = self.p.pid
        broker._subs.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while not self._subscribed.wait(0.05):
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise TestFailure(
                    "mosquitto_sub -t %s on port %d got no SUBACK within 10 s (exit %s)\n"
                    "its output: %s\nbroker log tail:\n%s"
                    % (topic, broker.port, self.p.returncode, self._debug[-5:],
                       broker.log_tail()))

    def _read(self):
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith(MSG_MARK):
                t, _, hx = line[len(MSG_MARK):].rpartition(" ")
                self.msgs.append((t, bytes.fromhex(hx)))
            else:
                self._debug.append(line)
                if "received SUBACK" in line:
                    self._subscribed.set()

    def wait(self):
        """Waits (bounded by the timeout given, plus slack) and returns the messages."""
        try:
            self.p.wait(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.close()
            raise TestFailure("mosquitto_sub -t %s did not exit within %.0f s"
                              % (self.topic, self.timeout + 10))
        self._reader.join(timeout=5)
        self.stderr = self.p.stderr.read().decode("utf-8", "replace")
        return list(self.msgs)

    def close(self):
        kill_pid(self.p, self.pid)
        for f in (self.p.stdout, self.p.stderr):
            try:
                f.close()
            except Exception:
                pass


class Broker(PeerLog):
    """mosquitto on a free loopback port, owned by harness h (see the module docstring).

    tls: a TLS listener with a test PKI (self.certs: ca, server_cert/key, client_cert/key,
         wrong_ca, wrong_client_cert/key); clients must trust self.certs.ca.
    require_certificate: with tls, a client certificate signed by the CA is required.
    password: allow_anonymous false; a password file made with mosquitto_passwd holding
         self.users (name -> password): the upstream user and one "gateway" user;
         add_user() adds more. password_file(user) writes a user's password to a file
         (what --sync-password-file and a sync node's passwordFile read).
    acl: an ACL file: every client may read and write sprig/<its client id>/# only, and
         the upstream user may read and write sprig/#. With ACLs each gateway must
         connect with its device id as its MQTT client id (the %c in the pattern), so a
         device can neither read nor forge another device's topics.
    """

    def __init__(self, h, tls=False, require_certificate=False, password=False, acl=False,
                 port=None, start=True):
        check(not require_certificate or tls, "require_certificate needs tls")
        self.h = h
        self.tls = tls
        self.require_certificate = require_certificate
        self.password = password
        self.acl = acl
        self.port = port or free_port()
        self._n = sum(1 for p in h.procs if isinstance(p, Broker))
        self.name = "broker%d" % self._n if self._n else "broker"
        self.dir = h.path(self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        self.p = None
        self.pid = None
        self._subs = []
        self._log = None
        self.certs = Certs(os.path.join(self.dir, "pki")) if tls else None
        self.users = {}
        self.passwd = os.path.join(self.dir, "passwd") if password else None
        self.acl_path = os.path.join(self.dir, "acl") if acl else None
        if password:
            self.add_user(UPSTREAM_USER)
            self.add_user("gateway")
        if acl:
            with open(self.acl_path, "w") as f:
                f.write("# pattern lines apply to every client, anonymous or not: %%c is its\n"
                        "# MQTT client id, so a gateway must connect with its device id as\n"
                        "# its client id to reach its own topics.\n"
                        "pattern readwrite sprig/%%c/#\n\n"
                        "# The upstream reads and writes every device's topics.\n"
                        "user %s\ntopic readwrite sprig/#\n" % UPSTREAM_USER)
        self._write_conf()
        h.procs.append(self)
        if start:
            self.start()

    # --- configuration -------------------------------------------------------------------

    @property
    def uri(self):
        return "%s://127.0.0.1:%d" % ("mqtts" if self.tls else "mqtt", self.port)

    def _write_conf(self):
        lines = [
            "# written by tests/integration/broker.py",
            "listener %d 127.0.0.1" % self.port,
            "allow_anonymous %s" % ("false" if self.password else "true"),
            "persistence false",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
        ]
        if os.getuid() == 0:
            # As root mosquitto would switch to the "mosquitto" user, which cannot read
            # the harness directory (mode 0700): stay who we are.
            lines.append("user %s" % pwd.getpwuid(os.getuid()).pw_name)
        if self.tls:
            lines += ["cafile %s" % self.certs.ca,
                      "certfile %s" % self.certs.server_cert,
                      "keyfile %s" % self.certs.server_key,
                      "require_certificate %s" % ("true" if self.require_certificate
                                                  else "false")]
        if self.password:
            lines.append("password_file %s" % self.passwd)
        if self.acl:
            lines.append("acl_file %s" % self.acl_path)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def add_user(self, name, password=None):
        """Adds (or changes) a user in the password file; a running broker rereads it
        (SIGHUP). Returns the password."""
        check(self.password, "add_user on a broker without password=True")
        pw = password if password is not None else secrets.token_hex(12)
        first = not os.path.exists(self.passwd)
        _run(["mosquitto_passwd"] + (["-c"] if first else []) + ["-b", self.passwd, name, pw],
             "mosquitto_passwd " + name)
        os.chmod(self.passwd, 0o600)
        self.users[name] = pw
        if self.running():
            os.kill(self.pid, signal.SIGHUP)
            time.sleep(0.2)
        return pw

    def password_file(self, user=UPSTREAM_USER, password=None):
        """A file (mode 0600) holding user's password (or the given one), no newline."""
        path = os.path.join(self.dir, "%s.password" % user)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.users[user] if password is None else password)
        return path

    def client_args(self, user=UPSTREAM_USER, client_id=None, cert="client", password=None):
        """mosquitto_pub/sub arguments for this broker's mode. cert: "client" (signed by
        the CA), "wrong" (signed by the wrong CA), None (no client certificate); user: a
        name in self.users (None: anonymous); password overrides the user's own."""
        a = []
        if self.tls:
            a += ["--cafile", self.certs.ca]
            if cert == "client":
                a += ["--cert", self.certs.client_cert, "--key", self.certs.client_key]
            elif cert == "wrong":
                a += ["--cert", self.certs.wrong_client_cert, "--key",
                      self.certs.wrong_client_key]
        if self.password and user is not None:
            a += ["-u", user, "-P", self.users.get(user, "") if password is None else password]
        elif self.acl and user is not None:
            a += ["-u", user]
        if client_id is not None:
            a += ["-i", client_id]
        return a

    # --- process -------------------------------------------------------------------------

    def running(self):
        return self.p is not None and self.p.poll() is None

    def start(self, timeout=10):
        """Starts mosquitto on self.port and waits (bounded) until its log says it
        listens there."""
        if self.running():
            raise TestFailure("%s is already running (pid %d)" % (self.name, self.pid))
        if self._log is None:
            self._log = open(self.log_path, "ab")
        offset = os.path.getsize(self.log_path)
        self.p = subprocess.Popen([MOSQUITTO, "-c", self.conf], cwd=self.dir,
                                  stdin=subprocess.DEVNULL, stdout=self._log,
                                  stderr=self._log)
        self.pid = self.p.pid
        want = "Opening ipv4 listen socket on port %d." % self.port
        deadline = time.monotonic() + timeout
        while True:
            text = self._log_from(offset)
            if want in text and "running" in text:
                return self
            if self.p.poll() is not None:
                raise TestFailure("%s exited %d at start on port %d\nlog:\n%s"
                                  % (self.name, self.p.returncode, self.port, text))
            if time.monotonic() > deadline:
                raise TestFailure("%s: no %r in its log within %.0f s\nlog:\n%s"
                                  % (self.name, want, timeout, text))
            time.sleep(0.02)

    def stop(self, timeout=10):
        """SIGTERM by pid, then waits for the exit; returns its code (None if it was
        not running)."""
        if self.p is None or self.p.poll() is not None:
            return None if self.p is None else self.p.returncode
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.p.wait(timeout=10)
            raise TestFailure("%s (pid %d) did not exit within %.0f s of SIGTERM"
                              % (self.name, self.pid, timeout))

    # --- clients -------------------------------------------------------------------------

    def pub(self, topic, payload, qos=1, retain=False, expect_ok=True, **auth):
        """Publishes payload (str or bytes) on topic with mosquitto_pub (stdin, so any
        bytes and size); auth: see client_args. Returns the CompletedProcess; fails on a
        non-zero exit unless expect_ok is False."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        args = (["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "--nodelay",
                 "-q", str(qos), "-t", topic, "-s"] + (["-r"] if retain else [])
                + self.client_args(**auth))
        try:
            r = subprocess.run(args, input=payload, capture_output=True,
                               timeout=TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise TestFailure("mosquitto_pub -t %s did not finish within %d s"
                              % (topic, TOOL_TIMEOUT))
        if expect_ok:
            check(r.returncode == 0, "mosquitto_pub -t %s on %s exited %d: %s\nbroker log "
                  "tail:\n%s" % (topic, self.name, r.returncode,
                                 r.stderr.decode("utf-8", "replace"), self.log_tail()))
        return r

    def sub_start(self, topic, n, timeout, **auth):
        """A background mosquitto_sub (QoS 1), already subscribed when returned; its
        wait() gives up to n messages received within timeout seconds."""
        return Sub(self, topic, n, timeout, self.client_args(**auth))

    def sub_collect(self, topic, n, timeout, **auth):
        """Up to n messages [(topic, payload bytes)] on topic (wildcards allowed) within
        timeout seconds (retained ones included), via mosquitto_sub -C n -W secs."""
        return self.sub_start(topic, n, timeout, **auth).wait()


class Front:
    """A TCP front of a Broker that answers MQTT 5 as a broker speaking only 3.1.1 does (as
    NATS's MQTT listener does; mosquitto itself cannot be limited to one version), owned by
    harness h. It reads each client's CONNECT (bounded: 5 s) and, for a protocol level 5
    one, in mode
      "connack": answers a 3.1.1 CONNACK with return code 1 (unacceptable protocol
                 version) and closes, which NATS 2.9 does;
      "close":   closes the connection without any CONNACK (other 3.1.1 brokers);
      "pass":    passes it on like any other;
    every other CONNECT goes on to the broker, and the two sockets are joined both ways.
    self.connects counts the CONNECTs seen by protocol level ({4: n, 5: n}).
    drop() closes every open connection, as a broker restart does, and keeps listening;
    stop() also stops listening (a broker gone), start() listens again on the same port.
    Threads of this process; close() (the harness's cleanup) ends them all, bounded."""

    def __init__(self, h, broker, mode):
        check(mode in ("connack", "close", "pass"), "Front mode %r" % mode)
        self.broker = broker
        self.mode = mode
        self.port = free_port()
        self.connects = {}
        self._lock = threading.Lock()
        self._socks = set()
        self._threads = []
        self._lsock = None
        h.procs.append(self)
        self.start()

    @property
    def uri(self):
        return "mqtt://127.0.0.1:%d" % self.port

    def start(self):
        check(self._lsock is None, "front on port %d is already listening" % self.port)
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        self._lsock = ls
        self._spawn(self._accept, ls)
        return self

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _keep(self, sock):
        with self._lock:
            self._socks.add(sock)

    def _close(self, *socks):
        for sock in socks:
            with self._lock:
                self._socks.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return   # stop() closed the listener
            self._keep(c)
            self._spawn(self._serve, c)

    @staticmethod
    def _read_exact(sock, n, deadline):
        b = b""
        while len(b) < n:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(n - len(b))
            if not chunk:
                raise OSError("closed")
            b += chunk
        return b

    def _serve(self, c):
        deadline = time.monotonic() + 5
        try:
            head = self._read_exact(c, 1, deadline)
            length, mult, raw = 0, 1, b""
            for _ in range(4):
                d = self._read_exact(c, 1, deadline)
                raw += d
                length += (d[0] & 0x7f) * mult
                mult *= 128
                if not d[0] & 0x80:
                    break
            body = self._read_exact(c, length, deadline)
            check(head[0] == 0x10 and len(body) >= 7, "not a CONNECT")
            name_len = int.from_bytes(body[0:2], "big")
            level = body[2 + name_len]
        except (OSError, TestFailure, IndexError):
            self._close(c)
            return
        with self._lock:
            self.connects[level] = self.connects.get(level, 0) + 1
        if level == 5 and self.mode == "connack":
            try:
                c.sendall(b"\x20\x02\x00\x01")
            except OSError:
                pass
            self._close(c)
            return
        if level == 5 and self.mode == "close":
            self._close(c)
            return
        try:
            b = socket.create_connection(("127.0.0.1", self.broker.port), timeout=5)
        except OSError:
            self._close(c)
            return
        self._keep(b)
        for sock in (c, b):
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            b.sendall(head + raw + body)
            self._pump(c, b)
        except (OSError, ValueError):
            pass   # a side closed, or drop() closed both under select
        self._close(c, b)

    @staticmethod
    def _pump(c, b):
        """Copies bytes both ways until either side closes (or drop() closes them)."""
        peer = {c: b, b: c}
        while True:
            r, _, _ = select.select([c, b], [], [], 1.0)
            for sock in r:
                d = sock.recv(65536)
                if not d:
                    return
                peer[sock].sendall(d)

    def drop(self):
        """Closes every open connection (clients see their broker restart)."""
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            self._close(sock)

    def stop(self):
        """Stops listening and closes every open connection (the broker is gone)."""
        if self._lsock is not None:
            self._close(self._lsock)
            self._lsock = None
        self.drop()

    def close(self):
        self.stop()
        for t in self._threads:
            t.join(timeout=2)


# --- self-check ------------------------------------------------------------------------------

def _roundtrip(b, what, topic="sprig/dev1/up", payload=b"hello \x00\xff\n world",
               sub_auth=None, **auth):
    s = b.sub_start(topic, 1, 5, **(auth if sub_auth is None else sub_auth))
    b.pub(topic if "+" not in topic else topic.replace("+", "dev1"), payload, **auth)
    got = s.wait()
    topic = topic.replace("+", "dev1")
    check(got == [(topic, payload)], "%s: expected [(%r, %r)], got %r (sub stderr %r, "
          "output %r)\nbroker log tail:\n%s" % (what, topic, payload, got, s.stderr, s._debug,
                                               b.log_tail()))
    print("ok: %s" % what)


def _refused_pub(b, what, **auth):
    r = b.pub("sprig/dev1/up", "x", expect_ok=False, **auth)
    check(r.returncode != 0, "%s: mosquitto_pub was not refused" % what)
    print("ok: %s refused (%s)" % (what, r.stderr.decode("utf-8", "replace").strip()
                                   .splitlines()[-1:] if r.stderr else "exit %d" % r.returncode))


def _selftest():
    import shutil
    import tempfile

    class H:  # the part of sprigtest.Harness a Broker uses
        def __init__(self):
            self.dir = tempfile.mkdtemp(prefix="sprig-it-broker-")
            self.procs = []

        def path(self, *p):
            return os.path.join(self.dir, *p)

    h = H()
    try:
        # Plain: a round trip, a retained message, stop and start on the same port.
        b = Broker(h)
        _roundtrip(b, "plain round trip")
        b.pub("sprig/dev1/status", "online", retain=True)
        check(b.sub_collect("sprig/dev1/status", 1, 3) == [("sprig/dev1/status", b"online")],
              "retained status not delivered")
        print("ok: plain retained")
        port = b.port
        check(b.stop() == 0, "mosquitto did not exit 0 on SIGTERM")
        r = b.pub("sprig/dev1/up", "x", expect_ok=False)
        check(r.returncode != 0, "mosquitto_pub succeeded against a stopped broker")
        b.start()
        check(b.port == port, "restart moved the port")
        _roundtrip(b, "plain after a restart on the same port %d" % port)
        b.stop()

        # TLS, client certificate required.
        t = Broker(h, tls=True, require_certificate=True)
        check(t.uri.startswith("mqtts://127.0.0.1:"), t.uri)
        _roundtrip(t, "TLS with a client certificate")
        _refused_pub(t, "TLS without a client certificate", cert=None)
        _refused_pub(t, "TLS with a client certificate from the wrong CA", cert="wrong")
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(t.port), "-t", "a",
                            "-m", "x", "--cafile", t.certs.wrong_ca, "--cert",
                            t.certs.client_cert, "--key", t.certs.client_key],
                           capture_output=True, timeout=TOOL_TIMEOUT)
        check(r.returncode != 0, "a client trusting the wrong CA accepted the server")
        print("ok: a client trusting the wrong CA refuses the server")
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(t.port), "-t", "a",
                            "-m", "x"], capture_output=True, timeout=TOOL_TIMEOUT)
        check(r.returncode != 0, "plain MQTT passed on the TLS listener")
        print("ok: plain MQTT refused on the TLS listener")
        t.stop()

        # TLS, server authentication only.
        t2 = Broker(h, tls=True)
        _roundtrip(t2, "TLS without require_certificate, no client certificate", cert=None)
        t2.stop()

        # Password.
        p = Broker(h, password=True)
        _roundtrip(p, "password, upstream user")
        _roundtrip(p, "password, gateway user", user="gateway")
        _refused_pub(p, "a wrong password", password="nope")
        _refused_pub(p, "anonymous with allow_anonymous false", user=None)
        pw = p.add_user("late")
        _roundtrip(p, "a user added while running (SIGHUP)", user="late")
        with open(p.password_file("gateway")) as f:
            check(f.read() == p.users["gateway"], "password_file content")
        check(os.stat(p.password_file("gateway")).st_mode & 0o777 == 0o600,
              "password file mode")
        check(pw == p.users["late"], "add_user's password")
        p.stop()

        # Password and ACL: a gateway reaches only sprig/<its client id>/#.
        a = Broker(h, password=True, acl=True)
        _roundtrip(a, "ACL: gateway dev1 publishes on sprig/dev1/up, the upstream reads "
                   "sprig/+/up", topic="sprig/+/up", user="gateway", client_id="dev1",
                   sub_auth={})
        _roundtrip(a, "ACL: the upstream publishes on sprig/dev1/down, gateway dev1 reads it",
                   topic="sprig/dev1/down", sub_auth={"user": "gateway", "client_id": "dev1"})
        s = a.sub_start("sprig/dev2/down", 1, 2, user="upstream")
        a.pub("sprig/dev2/down", "forged", user="gateway", client_id="dev1")
        got = s.wait()
        check(got == [], "ACL: dev1 published on sprig/dev2/down: %r" % got)
        print("ok: ACL: dev1's publish on sprig/dev2/down is dropped")
        s = a.sub_start("sprig/dev2/down", 1, 2, user="gateway", client_id="dev1")
        a.pub("sprig/dev2/down", "secret", user="upstream")
        got = s.wait()
        check(got == [], "ACL: dev1 read sprig/dev2/down: %r" % got)
        print("ok: ACL: dev1 cannot read sprig/dev2/down")
        a.stop()
        for x in h.procs:
            x.close()
        print("PASS broker.py self-check")
    finally:
        for x in h.procs:
            x.close()
        if os.environ.get("SPRIG_IT_KEEP"):
            print("kept %s" % h.dir)
        else:
            shutil.rmtree(h.dir, ignore_errors=True)


if __name__ == "__main__":
    _selftest()
