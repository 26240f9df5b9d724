"""A real NATS cluster with MQTT listeners, for sprig's fleet tests (DESIGN.md section 11):
the broker cluster the upstream workers share. Standard library only, run with
/usr/bin/python3.

`NatsCluster(h, n=3)` is owned by a `sprigtest.Harness`: each node's config, log and
JetStream store live in the harness directory, and the cluster joins `h.procs`, so when
the harness exits, pass or fail, every nats-server and every mosquitto_sub this module
started is killed by pid and reaped, and the directory is removed with them.

    c = NatsCluster(h)           # three nodes, formed and answering MQTT (a few seconds)
    c.mqtt_uris                  # ["mqtt://127.0.0.1:PORT", ...], one per node
    c.kill(0)                    # SIGKILL node 0 by pid (a crash)
    c.wait_ready()               # until every live node takes a QoS 1 publish again
    c.start(0)                   # node 0 again, same ports and store; waits for it
    c.pub(1, "sprig/d1/up", b"x")            # mosquitto_pub -V mqttv311 on node 1
    s = c.sub_start(2, "sprig/+/up", 1, 5)   # mosquitto_sub on node 2 (SUBACK seen)
    c.stop()                     # SIGINT every node by pid (graceful), waits

Each node is `nats-server -c CONFIG` (Debian's nats-server 2.9) with a `server_name`,
JetStream (`store_dir` in its directory, 64MB memory and 1GB file limits), a cluster
block (one cluster name, a route to every node), its MQTT listener and an HTTP monitoring
port, all on 127.0.0.1 and free ports. Ready means: every live node's
/healthz?js-server-only=true says ok (it is in contact with a JetStream meta leader) and
its /routez shows a route to every other live node, then a QoS 1 mosquitto_pub (MQTT
3.1.1) on every live node gets its PUBACK (retried until it does, bounded). The probes
publish on `sprig-harness/ready`, outside `sprig/#`. Nodes are started with `setpriv
--pdeathsig SIGKILL`: they die with the thread that started them if the test process is
killed, so start the cluster from a thread that outlives it (the main thread).

What NATS 2.9's MQTT listener does, measured here (the fleet code must live with it):
- MQTT 3.1.1 only. An MQTT 5 CONNECT gets CONNACK "unsupported protocol version"; an
  MQTT 3.1 one ("MQIsdp") is dropped without a CONNACK.
- QoS 0 and 1 only. A QoS 2 PUBLISH closes the connection ("publish QoS=2 not
  supported"); a QoS 2 SUBSCRIBE is granted QoS 1.
- A topic with '.' or ' ' in it is refused: SUBSCRIBE gets 0x80 in its SUBACK, and a
  PUBLISH closes the connection (MQTT '/' becomes NATS's '.'). So a device id or a node
  name that goes into a topic must not contain either. '*', '>', '$', UTF-8, empty levels
  ("sprig//x", "/x", "x/") pass.
- '#' also matches NATS's own traffic of the account: a subscriber to "#" receives
  $MQTT/sess/..., $MQTT/JSA/..., $JS/API/... and $JS/EVENT/ADVISORY/... messages. Subscribe
  to "sprig/#", never "#".
- Every QoS 1 subscription is a JetStream consumer (replicated on 3 nodes here): its
  SUBACK takes 0.2-0.8 s (2 s for the first on a fresh cluster) where a QoS 0 one takes
  20 ms. Subscribe with wildcards, not one topic at a time. QoS 1 messages a subscriber
  has not PUBACKed are redelivered after ack_wait (30 s), and at most max_ack_pending
  are in flight per subscription (both settable in the mqtt block).
- The first MQTT connection on each node makes the account's streams ($MQTT_sess,
  $MQTT_msgs, $MQTT_rmsgs, replicas 3) or its consumer on them: 0.5-2.5 s. A fresh
  cluster is healthy 0.35 s after start and ready in about 3-4 s.
- Killing the node that leads the $MQTT_msgs stream (in our runs it also led the
  JetStream meta group) stops QoS 1 publishing on the other nodes for about 8 s: the
  server waits 4 s for the stream ("timeout for request type MS"), then closes the
  publisher's connection without a PUBACK, and such a message is not delivered (and so
  never twice). The publisher must reconnect and publish again. QoS 0 messages pass
  meanwhile. Killing a node that led neither, publishing goes on at once. /healthz still
  says ok for about 2 s after the kill. A QoS 1 subscription made before the kill keeps
  receiving afterwards; a persistent session (clean session false) resumes on another
  node with its queued messages. A killed node started again serves MQTT within 1-2 s,
  but its full /healthz said "consumer '$G > $MQTT_rmsgs > ...' is not current" for over
  a minute: a probe or load balancer must not read that as down (js-server-only=true is
  ok after about 1 s).
- Retained messages work across nodes (stored in $MQTT_rmsgs). A client id is unique in
  the whole cluster: connecting with it on another node takes the session over and
  disconnects the first (two auto-reconnecting clients with one id evict each other in a
  loop). A 2 MiB QoS 1 payload passed.

Run directly (`/usr/bin/python3 nats.py`), it checks itself: a QoS 1 message published on
node 0 reaches a subscriber on node 2; after node 0 is killed, a message published on
node 1 still reaches it (publishing again until a PUBACK comes back); node 0 starts again
and a message published on node 2 reaches a subscriber on node 0.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sprigtest import PeerHarness, PeerLog, TestFailure, check, kill_pid  # noqa: E402
from broker import Sub  # noqa: E402


NATS_SERVER = "/usr/bin/nats-server" if os.access("/usr/bin/nats-server", os.X_OK) \
    else "nats-server"
CLUSTER_NAME = "sprig-test"
MQTT_VERSION = ["-V", "mqttv311"]   # the only MQTT version the listener speaks
READY_TOPIC = "sprig-harness/ready"
START_TIMEOUT = 20       # seconds from exec until the cluster is ready
FAILOVER_TIMEOUT = 40    # seconds wait_ready() gives a cluster that lost a node
STOP_TIMEOUT = 15        # seconds a node may take to exit on SIGINT
TOOL_TIMEOUT = 20        # seconds one mosquitto_pub may take
HTTP_TIMEOUT = 2         # seconds one monitoring request may take


def _free_ports(n):
    """n distinct loopback ports nobody listens on right now: all are held bound until
    all are chosen, so the kernel cannot hand out one twice."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Node(PeerLog):
    """One nats-server of a NatsCluster: its ports, files and process. It also stands in
    for broker.Broker where broker.Sub wants one (port, _subs, log_tail)."""

    def __init__(self, cluster, i, ports):
        self.cluster = cluster
        self.i = i
        self.name = "n%d" % i
        self.dir = os.path.join(cluster.dir, self.name)
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "nats.conf")
        self.store_dir = os.path.join(self.dir, "js")
        self.log_path = os.path.join(self.dir, "nats.log")
        self.client_port, self.route_port, self.mqtt_port, self.http_port = ports
        self.port = self.mqtt_port
        self.p = None
        self.pid = None
        self._log = None
        self._subs = []

    @property
    def mqtt_uri(self):
        return "mqtt://127.0.0.1:%d" % self.mqtt_port

    def write_conf(self, route_ports):
        routes = "".join("    nats-route://127.0.0.1:%d\n" % p for p in route_ports)
        with open(self.conf, "w") as f:
            f.write("# written by tests/integration/nats.py\n"
                    "server_name: %s\n"
                    "listen: 127.0.0.1:%d\n"
                    "http: 127.0.0.1:%d\n"
                    "jetstream {\n"
                    "  store_dir: \"%s\"\n"
                    "  max_memory_store: 64MB\n"
                    "  max_file_store: 1GB\n"
                    "}\n"
                    "cluster {\n"
                    "  name: %s\n"
                    "  listen: 127.0.0.1:%d\n"
                    "  routes: [\n%s  ]\n"
                    "}\n"
                    "mqtt {\n"
                    "  listen: 127.0.0.1:%d\n"
                    "}\n"
                    % (self.name, self.client_port, self.http_port, self.store_dir,
                       CLUSTER_NAME, self.route_port, routes, self.mqtt_port))

    def running(self):
        return self.p is not None and self.p.poll() is None

    def spawn(self):
        if self.running():
            raise TestFailure("%s is already running (pid %d)" % (self.name, self.pid))
        if self._log is None:
            self._log = open(self.log_path, "ab")
        self.p = subprocess.Popen(
            ["setpriv", "--pdeathsig=SIGKILL", "--", NATS_SERVER, "-c", self.conf],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.pid = self.p.pid   # setpriv execs nats-server: the same pid

    def http(self, path):
        """The monitoring endpoint's JSON answer (an error status's too), or None when
        nothing answers."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http_port, path),
                                        timeout=HTTP_TIMEOUT) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return json.loads(e.read())
            except ValueError:
                return None
        except (OSError, ValueError):
            return None

    def server_id(self):
        """This run's server id (a new one at each start), or None."""
        return (self.http("/varz") or {}).get("server_id")

    def state(self, live_ids):
        """None when this node is healthy and routed to every other live node (live_ids:
        name -> server id), else a phrase saying what it lacks."""
        # js-server-only: the full check stays "consumer ... is not current" for over a
        # minute on a node started again, while its MQTT listener already works.
        hz = self.http("/healthz?js-server-only=true")
        if hz is None:
            return "no answer on its monitoring port %d" % self.http_port
        if hz.get("status") != "ok":
            return "healthz %s: %s" % (hz.get("status"), hz.get("error"))
        rz = self.http("/routez") or {}
        peers = {r.get("remote_id") for r in rz.get("routes") or []}
        missing = sorted(name for name, sid in live_ids.items()
                         if name != self.name and sid not in peers)
        if missing:
            return "no route to %s" % ", ".join(missing)
        return None

    def stop(self, timeout=STOP_TIMEOUT):
        if self.p is None or self.p.poll() is not None:
            return None if self.p is None else self.p.returncode
        os.kill(self.pid, signal.SIGINT)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_pid(self.p, self.pid)
            raise TestFailure("%s (pid %d) did not exit within %.0f s of SIGINT\nlog tail:\n%s"
                              % (self.name, self.pid, timeout, self.log_tail()))


class NatsCluster:
    """n nats-server nodes in one cluster with JetStream and MQTT, owned by harness h (see
    the module docstring). start=False: configs only; start(i) each node, then
    wait_ready()."""

    def __init__(self, h, n=3, start=True):
        self.h = h
        self.n = n
        k = sum(1 for p in h.procs if isinstance(p, NatsCluster))
        self.name = "nats%d" % k if k else "nats"
        self.dir = h.path(self.name)
        os.makedirs(self.dir)
        ports = _free_ports(4 * n)
        self.nodes = [Node(self, i, ports[4 * i:4 * i + 4]) for i in range(n)]
        for node in self.nodes:
            node.write_conf([x.route_port for x in self.nodes])
        h.procs.append(self)
        self.start_seconds = None     # how long the first start took
        if start:
            t0 = time.monotonic()
            for node in self.nodes:
                node.spawn()
            self.wait_ready(START_TIMEOUT)
            self.start_seconds = time.monotonic() - t0

    @property
    def mqtt_uris(self):
        return [node.mqtt_uri for node in self.nodes]

    def live(self):
        return [node for node in self.nodes if node.running()]

    def _fail(self, what):
        raise TestFailure("%s: %s\n%s" % (self.name, what, "\n".join(
            "%s (pid %s, %s) log tail:\n%s"
            % (node.name, node.pid, "running" if node.running() else
               "not running" if node.p is None else "exited %s" % node.p.returncode,
               node.log_tail(8)) for node in self.nodes)))

    def wait_ready(self, timeout=FAILOVER_TIMEOUT):
        """Waits (bounded) until every running node is healthy, routed to every other
        running node, and acknowledges a QoS 1 publish on its MQTT listener. After a
        kill() this is the end of the failover (about 8 s when the killed node led a
        stream). Fails naming what is missing, with each node's log tail."""
        deadline = time.monotonic() + timeout
        live = self.live()   # a killed or stopped node is not waited for
        check(live, "%s.wait_ready(): no node is running" % self.name)
        while True:
            for node in live:
                if not node.running():
                    self._fail("%s exited %s while starting" % (node.name, node.p.returncode))
            ids = {node.name: node.server_id() for node in live}
            states = [(node.name, node.state(ids)) for node in live]
            bad = [(n, s) for n, s in states if s]
            if not bad:
                break
            if time.monotonic() > deadline:
                self._fail("not formed within %.0f s: %s"
                           % (timeout, "; ".join("%s: %s" % b for b in bad)))
            time.sleep(0.05)
        for node in live:
            while True:
                left = deadline - time.monotonic()
                r = self.pub(node.i, READY_TOPIC, node.name, expect_ok=False,
                             timeout=max(1.0, min(TOOL_TIMEOUT, left)))
                if r is not None and r.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    self._fail("%s's MQTT listener %s acknowledged no QoS 1 publish within "
                               "%.0f s (last: %s)" % (node.name, node.mqtt_uri, timeout,
                                                      "timed out" if r is None else
                                                      r.stderr.decode("utf-8", "replace")
                                                      .strip()))
                time.sleep(0.1)
        return self

    def kill(self, i):
        """SIGKILL node i by pid and reap it; does not wait for the failover (see
        wait_ready)."""
        node = self.nodes[i]
        check(node.running(), "%s.kill(%d): %s is not running" % (self.name, i, node.name))
        kill_pid(node.p, node.pid)

    def start(self, i, timeout=START_TIMEOUT):
        """Starts node i again (same ports, config and JetStream store) and waits until
        the cluster, with it, is ready."""
        self.nodes[i].spawn()
        return self.wait_ready(timeout)

    def stop(self, timeout=STOP_TIMEOUT):
        """A graceful shutdown of every running node (SIGINT by pid, sent to all first),
        then waits for each; returns their exit codes (0; None for a node that was not
        running). nats-server shuts down as cleanly on SIGTERM but exits 1."""
        for node in self.live():
            os.kill(node.pid, signal.SIGINT)
        return [node.stop(timeout) for node in self.nodes]

    def close(self):
        """Harness cleanup: every node and mosquitto_sub killed by pid and reaped."""
        for node in self.nodes:
            node.close()

    # --- clients -------------------------------------------------------------------------

    def pub(self, i, topic, payload, qos=1, retain=False, client_id=None, expect_ok=True,
            timeout=TOOL_TIMEOUT):
        """Publishes payload (str or bytes) on topic through node i with mosquitto_pub
        -V mqttv311 (stdin, so any bytes). Returns the CompletedProcess, or None if it ran
        longer than timeout seconds; unless expect_ok is False, anything but a clean exit
        fails the test."""
        node = self.nodes[i]
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        args = (["mosquitto_pub"] + MQTT_VERSION + ["-h", "127.0.0.1", "-p",
                                                    str(node.mqtt_port), "--nodelay",
                                                    "-q", str(qos), "-t", topic, "-s"]
                + (["-r"] if retain else []) + (["-i", client_id] if client_id else []))
        try:
            r = subprocess.run(args, input=payload, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            r = None
        if expect_ok:
            check(r is not None, "mosquitto_pub -t %s on %s did not finish within %.0f s"
                  % (topic, node.name, timeout))
            check(r.returncode == 0, "mosquitto_pub -t %s on %s exited %d: %s\nlog tail:\n%s"
                  % (topic, node.name, r.returncode, r.stderr.decode("utf-8", "replace"),
                     node.log_tail()))
        return r

    def sub_start(self, i, topic, n, timeout, client_id=None, clean=True):
        """A background mosquitto_sub -V mqttv311 (QoS 1) on node i, already subscribed
        when returned (broker.Sub); its wait() gives up to n messages [(topic, payload)]
        received within timeout seconds. clean=False keeps the session (-c, needs a
        client_id)."""
        args = list(MQTT_VERSION) + (["-i", client_id] if client_id else []) \
            + ([] if clean else ["-c"])
        return Sub(self.nodes[i], topic, n, timeout, args)


# --- self-check ------------------------------------------------------------------------------

def _selftest():
    t_all = time.monotonic()
    with PeerHarness("nats") as h:
        c = NatsCluster(h)
        print("ok: %d nodes formed, JetStream and MQTT ready in %.1f s: %s"
              % (c.n, c.start_seconds, " ".join(c.mqtt_uris)))

        s = c.sub_start(2, "sprig/+/up", 1, 10)
        c.pub(0, "sprig/dev1/up", b"one \x00\xff")
        got = s.wait()
        check(got == [("sprig/dev1/up", b"one \x00\xff")],
              "node 0 -> node 2: got %r\nsub output %r" % (got, s._debug[-5:]))
        print("ok: QoS 1 published on node 0 reaches a subscriber on node 2")

        r = c.pub(0, "sprig/dev.1/up", b"x", expect_ok=False)
        check(r is not None and r.returncode != 0, "a topic with '.' was accepted")
        print("ok: a topic with '.' is refused (the connection is closed)")

        # Node 0 dies; a subscriber on node 2 (subscribed before) gets what node 1
        # publishes, once a publish is acknowledged.
        s = c.sub_start(2, "sprig/+/up", 1, FAILOVER_TIMEOUT + 10)
        c.kill(0)
        t0 = time.monotonic()
        tries = 0
        while True:
            tries += 1
            r = c.pub(1, "sprig/dev2/up", b"after the kill", expect_ok=False)
            if r is not None and r.returncode == 0:
                break
            check(time.monotonic() - t0 < FAILOVER_TIMEOUT,
                  "node 1 acknowledged no publish within %d s of node 0's death (%d tries)"
                  % (FAILOVER_TIMEOUT, tries))
            time.sleep(0.1)
        acked = time.monotonic() - t0
        got = s.wait()
        check(got == [("sprig/dev2/up", b"after the kill")],
              "node 1 -> node 2 after node 0's death: got %r" % got)
        print("ok: node 0 killed; node 1's QoS 1 publish acknowledged after %.1f s (%d "
              "tries) and received on node 2" % (acked, tries))

        t0 = time.monotonic()
        c.wait_ready()
        print("ok: the two live nodes ready (%.1f s more)" % (time.monotonic() - t0))

        t0 = time.monotonic()
        c.start(0)
        print("ok: node 0 started again and ready in %.1f s" % (time.monotonic() - t0))
        s = c.sub_start(0, "sprig/+/up", 1, 10)
        c.pub(2, "sprig/dev3/up", b"back")
        got = s.wait()
        check(got == [("sprig/dev3/up", b"back")], "node 2 -> node 0: got %r" % got)
        print("ok: node 2 -> node 0 after its restart")

        codes = c.stop()
        check(codes == [0] * c.n, "exit codes on SIGINT: %r" % codes)
        print("ok: SIGINT stops every node (exit 0)")
        dir = h.dir
    check(not os.path.exists(dir), "harness directory %s left behind" % dir)
    print("PASS nats.py self-check (%.1f s)" % (time.monotonic() - t_all))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.stderr.write("usage: nats.py (checks itself)\n")
        sys.exit(2)
    try:
        _selftest()
    except TestFailure as e:
        sys.stderr.write("FAIL nats.py: %s\n" % e)
        sys.exit(1)
