"""A Modbus device simulator for sprig's integration tests (pymodbus 3.0, run by
/usr/bin/python3), usable as a script and as a module.

As a script:

    /usr/bin/python3 modbus_sim.py (--tcp PORT | --rtu PTY_PATH) [--host 127.0.0.1]
        [--baud 115200] [--units 1,2] [--init FILE.json] [--control FILE.json]
        [--stats FILE] [--size N] [--delay-ms N] [--silent-unit U]
        [--garble [short|fc|truncate|crc|tid]] [--garble-every N]

  - Addresses are 0-based on the wire (zero_mode=True: a read of address 0 reads
    register 0, as sprig's `address` point means it; mbpoll's `-r 1` is address 0).
  - One slave context per unit, each with --size (default 65536) coils, discrete inputs,
    holding and input registers (addresses 0..size-1; beyond, the answer is exception 2,
    illegal data address), all 0 unless --init sets them:
        {"1": {"hr": {"0": 4386, "10": [1, 2, 3]}, "ir": {...}, "co": {"5": 1}, "di": {...}}}
    (keys are decimal or 0x addresses; a list fills consecutive addresses).
  - Every request that is framed and decoded is written to --stats as one JSON line,
    flushed at once: {"t": unix time, "fc": 3, "unit": 1, "addr": 0, "count": 10,
    "reply": "ok"} ("values": [...] for writes: the words of FC6/FC16, 0/1 for FC5/FC15;
    "reply" is "ok", "exception N", "silent" or "garble:MODE"). The requests are counted
    in the request handler's execute(), once per request on the wire, whatever the
    datastore does (getValues is also called by writes, and not at all for a silent
    unit, so counting there would miss or double requests).
  - SIGUSR1 appends {"dump": {"1": {"hr": {"0": 4386}, "co": {...}, "ir": ..., "di": ...}},
    "t": ...} to --stats: every non-zero value of every unit (absent means 0).
  - SIGUSR2 reads --control (the same shape as --init), applies it and appends
    {"applied": N values, "t": ...} to --stats, so a test can change what a device
    holds while it is being polled. Its top level may also hold "garble" (a mode, or
    null for none), "garble_every" and "silent_unit" (a unit, or null), which replace
    the options of the same name from then on (a silent unit must be one of --units
    to be counted).
  - --delay-ms N: every answer leaves N ms after its request (the request is executed
    at once; only the reply waits).
  - --silent-unit U: requests for unit U are counted ("reply": "silent") and never
    answered nor executed, as a dead device on a shared RTU line.
  - --garble MODE: every --garble-every'th request (default 2: requests 2, 4, 6, ...;
    1 garbles all) is answered with a bad frame:
        short    a read answered with one value fewer (byte count consistent, so the
                 frame is well formed but shorter than what was asked); FC15/FC16
                 echoed with the quantity minus one; FC5/FC6 as `fc`
        fc       the answer carries the sibling function code (1<->2, 3<->4, 5<->6,
                 15<->16), with a body of the same shape
        truncate the first half of the frame only (the master times out)
        crc      RTU: the CRC's last byte flipped (TCP: as short)
        tid      TCP: transaction id + 1; RTU: the answer comes from unit id + 1
    libmodbus 3.1.6 (mbpoll) rejects short, fc and TCP tid as "Invalid data"
    (EMBBADDATA), crc as "Invalid CRC" (EMBBADCRC) and RTU tid as "Response not from
    requested slave" (EMBBADSLAVE) as soon as the frame is in; truncate is a timeout.
  - Prints "READY <port>" (TCP, the port really bound, so --tcp 0 works) or
    "READY <path>" (RTU) on stdout, flushed, once it serves. SIGTERM/SIGINT exit 0.

As a module (tests): `ModbusSim(h, ...)` starts the script as a subprocess and waits for
READY, reads the stats file (`requests()`, `reads()`), asks for a dump (`dump()`),
changes values (`set()`), stops it by pid; `PtyPair(h, name)` is a socat pty pair. Both
register themselves in the Harness so that they are killed (by pid) when it exits.
"""
import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sprigtest import kill_pid  # noqa: E402

SIM_PATH = os.path.abspath(__file__)
SIM_PYTHON = "/usr/bin/python3"  # Debian's, with pymodbus 3.0 (see ENVIRONMENT.md)
TABLES = ("hr", "ir", "co", "di")
CONTROL_KEYS = ("garble", "garble_every", "silent_unit")
GARBLE_MODES = ("short", "fc", "truncate", "crc", "tid")
NREG = 65536


# --- module side: the simulator and a pty pair as subprocesses of a test ------------------

class ModbusSim:
    """modbus_sim.py as a subprocess of a test, owned by a sprigtest Harness (closed, i.e.
    killed by pid, when the Harness exits). `tcp` is a port (0 for any free one; the
    bound port is in .port) or `rtu` a pty path; `init` a dict in --init's shape.
    stdout and stderr go to files in the Harness directory; the stats file too."""

    def __init__(self, h, tcp=None, rtu=None, units=(1,), init=None, delay_ms=0,
                 silent_unit=None, garble=None, garble_every=2, baud=115200, size=None,
                 name=None, ready_timeout=15):
        assert (tcp is None) != (rtu is None), "one of tcp or rtu"
        self.h = h
        self.name = name or "modbus-sim-%d" % len([p for p in h.procs
                                                   if isinstance(p, ModbusSim)])
        base = h.path(self.name)
        self.stats_path = base + ".stats"
        self.out_path = base + ".stdout"
        self.err_path = base + ".stderr"
        self.control_path = base + ".control.json"
        self.init_path = base + ".init.json"
        with open(self.init_path, "w") as f:
            json.dump(init or {}, f)
        args = [SIM_PYTHON, SIM_PATH, "--units", ",".join(str(u) for u in units),
                "--init", self.init_path, "--control", self.control_path,
                "--stats", self.stats_path, "--baud", str(baud)]
        if tcp is not None:
            args += ["--tcp", str(tcp)]
        else:
            args += ["--rtu", rtu]
        if delay_ms:
            args += ["--delay-ms", str(delay_ms)]
        if size is not None:
            args += ["--size", str(size)]
        if silent_unit is not None:
            args += ["--silent-unit", str(silent_unit)]
        if garble:
            args += ["--garble", garble, "--garble-every", str(garble_every)]
        self.args = args
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.p = subprocess.Popen(args, cwd=h.dir, stdin=subprocess.DEVNULL,
                                  stdout=self._out, stderr=self._err)
        self.pid = self.p.pid
        h.procs.append(self)  # Harness.__exit__ calls close()
        self.port = None
        deadline = time.monotonic() + ready_timeout
        while True:
            with open(self.out_path, "rb") as f:
                out = f.read().decode("utf-8", "replace")
            if "READY" in out:
                word = out.split("READY", 1)[1].split()
                if tcp is not None:
                    self.port = int(word[0])
                break
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("%s did not print READY within %.0f s (%s)\nstderr:\n%s"
                                     % (self.name, ready_timeout,
                                        "exited %s" % self.p.returncode
                                        if self.p.returncode is not None else "running",
                                        self.stderr()[-2000:]))
            time.sleep(0.02)

    # stats
    def lines(self):
        """Every complete JSON line of the stats file so far."""
        try:
            with open(self.stats_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for ln in data.split(b"\n")[:-1]:  # the last piece is "" or a line being written
            out.append(json.loads(ln))
        return out

    def requests(self, since=None, until=None, unit=None, fc=None):
        """Request records (not dumps), optionally within [since, until) unix times, of
        a unit and a function code (an int or a tuple of ints)."""
        fcs = (fc,) if isinstance(fc, int) else fc
        return [r for r in self.lines() if "fc" in r
                and (since is None or r["t"] >= since) and (until is None or r["t"] < until)
                and (unit is None or r["unit"] == unit) and (fcs is None or r["fc"] in fcs)]

    def reads(self, **kw):
        return self.requests(fc=(1, 2, 3, 4), **kw)

    def writes(self, **kw):
        return self.requests(fc=(5, 6, 15, 16), **kw)

    def dump(self, timeout=5):
        """SIGUSR1, then the new {"dump": ...} line: {unit (int): {table: {addr (int): v}}}."""
        n = sum(1 for r in self.lines() if "dump" in r)
        self.p.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while True:
            dumps = [r for r in self.lines() if "dump" in r]
            if len(dumps) > n:
                d = dumps[n]["dump"]
                return {int(u): {t: {int(a): v for a, v in tab.items()}
                                 for t, tab in d[u].items()} for u in d}
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise AssertionError("%s: no dump within %.0f s of SIGUSR1" % (self.name, timeout))
            time.sleep(0.02)

    def set(self, values=None, timeout=5, **control):
        """Applies values ({unit: {table: {addr: v or [v, ...]}}}) and control options
        (garble=MODE or None, garble_every=N, silent_unit=U or None) through --control
        and SIGUSR2; returns the sim's time of applying them, once it did."""
        n = sum(1 for r in self.lines() if "applied" in r)
        tmp = self.control_path + ".tmp"
        obj = {str(u): {t: {str(a): v for a, v in tab.items()} for t, tab in tabs.items()}
               for u, tabs in (values or {}).items()}
        for k, v in control.items():
            assert k in CONTROL_KEYS, k
            obj[k] = v
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.rename(tmp, self.control_path)
        self.p.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while True:
            applied = [r for r in self.lines() if "applied" in r]
            if len(applied) > n:
                if applied[n]["applied"] < 0:
                    raise AssertionError("%s: control refused: %s"
                                         % (self.name, applied[n].get("error")))
                return applied[n]["t"]
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise AssertionError("%s: values not applied within %.0f s of SIGUSR2"
                                     % (self.name, timeout))
            time.sleep(0.02)

    # process
    def alive(self):
        return self.p.poll() is None

    def stderr(self):
        self._err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout=10):
        """SIGTERM by pid; returns the exit code (0 expected)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s (pid %d) did not exit within %.0f s of SIGTERM"
                                 % (self.name, self.pid, timeout))

    def kill(self):
        """SIGKILL by pid and reap: the device dies without closing anything itself."""
        kill_pid(self.p, self.pid)

    def close(self):
        self.kill()
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:
                pass


class PtyPair:
    """`socat pty,raw,echo=0,link=DIR/NAME-a pty,raw,echo=0,link=DIR/NAME-b`: a serial
    line between .a and .b (a pty ignores baud rate and parity). Owned by the Harness
    (killed by pid when it exits); start it before the peers that open its ends."""

    def __init__(self, h, name="tty", timeout=10):
        self.h = h
        self.name = name
        self.a = h.path(name + "-a")
        self.b = h.path(name + "-b")
        self.err_path = h.path(name + ".socat.stderr")
        self._err = open(self.err_path, "wb")
        self.p = subprocess.Popen(
            ["socat", "-d", "-d", "pty,raw,echo=0,link=" + self.a,
             "pty,raw,echo=0,link=" + self.b],
            cwd=h.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._err)
        self.pid = self.p.pid
        h.procs.append(self)
        deadline = time.monotonic() + timeout
        # socat logs "starting data transfer loop" once both ptys exist and are linked.
        while True:
            with open(self.err_path, "rb") as f:
                if b"starting data transfer loop" in f.read() and os.path.exists(self.a) \
                        and os.path.exists(self.b):
                    break
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError("socat pty pair %s not up within %.0f s" % (name, timeout))
            time.sleep(0.02)

    def alive(self):
        return self.p.poll() is None

    def close(self):
        kill_pid(self.p, self.pid)
        try:
            self._err.close()
        except Exception:
            pass


# --- script side: the server --------------------------------------------------------------

def parse_values(obj):
    """{"1": {"hr": {"0": 5, "10": [1, 2]}}} -> [(unit, table, addr, value), ...]."""
    out = []
    for u, tabs in obj.items():
        if u in CONTROL_KEYS:
            continue
        for t, vals in tabs.items():
            if t not in TABLES:
                raise ValueError("unknown table %r (one of %s)" % (t, ", ".join(TABLES)))
            for a, v in vals.items():
                a = int(a, 0) if isinstance(a, str) else int(a)
                for i, x in enumerate(v if isinstance(v, list) else [v]):
                    x = int(x)
                    if t in ("co", "di"):
                        x = 1 if x else 0
                    elif not 0 <= x <= 0xFFFF:
                        raise ValueError("%s %d of unit %s: %d is not a 16-bit word"
                                         % (t, a + i, u, x))
                    if not 0 <= a + i < NREG:
                        raise ValueError("address %d out of range" % (a + i))
                    out.append((int(u), t, a + i, x))
    return out


SIBLING_FC = {1: 2, 2: 1, 3: 4, 4: 3, 5: 6, 6: 5, 15: 16, 16: 15}


def garble_pdu(pdu, mode):
    """pdu = function code + data of a response; returns the mutated pdu."""
    pdu = bytearray(pdu)
    fc = pdu[0]
    if fc & 0x80:
        return pdu  # an exception answer is left alone (short and fc have no meaning)
    if mode == "fc" or (mode == "short" and fc in (5, 6)):
        pdu[0] = SIBLING_FC.get(fc, fc)
    elif mode == "short":
        if fc in (3, 4):
            data = pdu[2:-2]
            pdu = bytearray([fc, len(data)]) + data
        elif fc in (1, 2):
            data = pdu[2:-1]
            pdu = bytearray([fc, len(data)]) + data
        elif fc in (15, 16):
            q = max(0, struct.unpack(">H", pdu[3:5])[0] - 1)
            pdu[3:5] = struct.pack(">H", q)
    return pdu


class Sim:
    """State shared by the connection handlers of one server process."""

    def __init__(self, args):
        from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                        ModbusSlaveContext)
        self.args = args
        self.units = [int(u) for u in args.units.split(",") if u.strip()]
        self.silent = args.silent_unit
        if self.silent is not None and self.silent not in self.units:
            self.units.append(self.silent)  # it must reach execute() to be counted
        self.slaves = {}
        n = args.size
        if not 1 <= n <= NREG:
            raise ValueError("--size %d is not 1..%d" % (n, NREG))
        for u in self.units:
            self.slaves[u] = ModbusSlaveContext(
                di=ModbusSequentialDataBlock(0, [0] * n),
                co=ModbusSequentialDataBlock(0, [0] * n),
                hr=ModbusSequentialDataBlock(0, [0] * n),
                ir=ModbusSequentialDataBlock(0, [0] * n),
                zero_mode=True)
        self.context = ModbusServerContext(slaves=self.slaves, single=False)
        self.stats = open(args.stats, "a") if args.stats else None
        self.nreq = 0
        if args.init:
            with open(args.init) as f:
                self.apply(json.load(f))

    def apply(self, obj):
        n = 0
        for u, t, a, v in parse_values(obj):
            if u not in self.slaves:
                raise ValueError("unit %d is not one of --units" % u)
            if a >= self.args.size:
                raise ValueError("%s %d of unit %d is beyond --size %d" % (t, a, u, self.args.size))
            self.slaves[u].store[t[0]].setValues(a, [v])  # "hr"->"h", "co"->"c", ...
            n += 1
        return n

    def log(self, rec):
        if self.stats is not None:
            self.stats.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.stats.flush()

    def dump(self):
        d = {}
        for u, s in self.slaves.items():
            d[str(u)] = {t: {str(a): (1 if v else 0) if t in ("co", "di") else v
                             for a, v in enumerate(s.store[t[0]].values) if v}
                         for t in TABLES}
        self.log({"dump": d, "t": time.time()})

    def control(self):
        try:
            with open(self.args.control) as f:
                obj = json.load(f)
            if obj.get("garble") not in (None,) + GARBLE_MODES:
                raise ValueError("garble mode %r" % obj["garble"])
            n = self.apply(obj)
            if "garble" in obj:
                self.args.garble = obj["garble"]
                self.nreq = 0
            if "garble_every" in obj:
                self.args.garble_every = int(obj["garble_every"])
            if "silent_unit" in obj:
                self.silent = obj["silent_unit"]
            self.log({"applied": n, "t": time.time()})
        except Exception as e:  # noqa: BLE001 - a bad control file must not kill the device
            self.log({"applied": -1, "error": str(e), "t": time.time()})

    def garble_now(self):
        """The garble mode for this request, or None."""
        self.nreq += 1
        if self.args.garble and self.nreq % max(1, self.args.garble_every) == 0:
            return self.args.garble
        return None


def record_of(request):
    fc = request.function_code
    rec = {"t": time.time(), "fc": fc, "unit": request.unit_id,
           "addr": getattr(request, "address", None)}
    if fc in (1, 2, 3, 4, 16):
        rec["count"] = getattr(request, "count", None)
    if fc == 5:
        rec["count"], rec["values"] = 1, [1 if request.value else 0]
    elif fc == 6:
        rec["count"], rec["values"] = 1, [request.value]
    elif fc == 15:
        rec["count"], rec["values"] = len(request.values), [1 if v else 0 for v in request.values]
    elif fc == 16:
        rec["values"] = list(request.values)
    return rec


def make_handler(base, sim, rtu):
    import asyncio

    from pymodbus.exceptions import NoSuchSlaveException
    from pymodbus.pdu import ModbusExceptions
    from pymodbus.utilities import computeCRC

    class Handler(base):
        def execute(self, request, *addr):
            rec = record_of(request)
            unit = request.unit_id
            if unit == sim.silent:
                rec["reply"] = "silent"
                sim.log(rec)
                return
            try:
                response = request.execute(sim.context[unit])
            except NoSuchSlaveException:
                response = request.doException(ModbusExceptions.GatewayNoResponse)
            except Exception:  # noqa: BLE001 - as pymodbus does: a device failure
                response = request.doException(ModbusExceptions.SlaveFailure)
            response.transaction_id = request.transaction_id
            response.unit_id = unit
            mode = sim.garble_now()
            if mode:
                rec["reply"] = "garble:" + mode
            elif response.function_code & 0x80:
                rec["reply"] = "exception %d" % response.exception_code
            else:
                rec["reply"] = "ok"
            sim.log(rec)
            if not response.should_respond:
                return
            if mode:
                frame = self.garbled(request, response, mode)
            else:
                frame = self.framer.buildPacket(response)
            if sim.args.delay_ms > 0:
                asyncio.get_running_loop().call_later(sim.args.delay_ms / 1000.0,
                                                      self.reply, frame)
            else:
                self.reply(frame)

        def reply(self, frame):
            if self.running and self.transport is not None and not self.transport.is_closing():
                self.transport.write(frame)

        def garbled(self, request, response, mode):
            pdu = bytes([response.function_code]) + response.encode()
            tid, unit = request.transaction_id, request.unit_id
            if mode == "crc" and not rtu:
                mode = "short"
            if mode == "tid":
                if rtu:
                    unit = (unit + 1) & 0xFF
                else:
                    tid = (tid + 1) & 0xFFFF
            elif mode != "truncate":
                pdu = garble_pdu(pdu, mode)
            if rtu:
                frame = bytes([unit]) + bytes(pdu)
                frame += struct.pack(">H", computeCRC(frame))
                if mode == "crc":
                    frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
            else:
                frame = struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + bytes(pdu)
            if mode == "truncate":
                frame = frame[:max(1, len(frame) // 2)]
            return frame

    return Handler


async def serve(args):
    import asyncio
    import logging

    from pymodbus.server.async_io import (ModbusConnectedRequestHandler, ModbusSerialServer,
                                          ModbusSingleRequestHandler, ModbusTcpServer)
    from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every closed connection
    sim = Sim(args)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, sim.dump)
    loop.add_signal_handler(signal.SIGUSR2, sim.control)

    if args.tcp is not None:
        handler = make_handler(ModbusConnectedRequestHandler, sim, rtu=False)
        server = ModbusTcpServer(sim.context, framer=ModbusSocketFramer,
                                 address=(args.host, args.tcp), handler=handler,
                                 allow_reuse_address=True)
        task = asyncio.create_task(server.serve_forever())
        await asyncio.wait([server.serving, task], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises the bind error
        port = server.server.sockets[0].getsockname()[1]
        print("READY %d" % port, flush=True)
        await stop.wait()
        # Stop accepting, close the open connections ourselves (asyncio leaves a just
        # accepted one open), then close (ENVIRONMENT.md).
        server.server.close()
        for conn in list(server.active_connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        await server.server_close()
        task.cancel()
    else:
        handler = make_handler(ModbusSingleRequestHandler, sim, rtu=True)
        server = ModbusSerialServer(sim.context, framer=ModbusRtuFramer, port=args.rtu,
                                    baudrate=args.baud, bytesize=8, parity="N", stopbits=1,
                                    timeout=0, handler=handler)
        from serial_asyncio import create_serial_connection
        server.transport, server.protocol = await create_serial_connection(
            loop, lambda: handler(server), args.rtu, baudrate=args.baud, bytesize=8,
            parity="N", stopbits=1, timeout=0)
        print("READY %s" % args.rtu, flush=True)
        await stop.wait()
        server.transport.close()
    if sim.stats is not None:
        sim.stats.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--tcp", type=int, metavar="PORT", help="serve Modbus TCP on PORT (0: any)")
    g.add_argument("--rtu", metavar="PATH", help="serve Modbus RTU on a serial device/pty")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--units", default="1", help="unit ids served, e.g. 1,2")
    ap.add_argument("--init", help="JSON of initial values")
    ap.add_argument("--control", help="JSON of values applied on SIGUSR2")
    ap.add_argument("--stats", help="JSON lines: one per request, dumps on SIGUSR1")
    ap.add_argument("--size", type=int, default=NREG,
                    help="registers and bits per table (beyond: exception 2)")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--silent-unit", type=int)
    ap.add_argument("--garble", nargs="?", const="short",
                    choices=GARBLE_MODES)
    ap.add_argument("--garble-every", type=int, default=2)
    args = ap.parse_args(argv)
    import asyncio
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as e:
        sys.stderr.write("modbus_sim: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
