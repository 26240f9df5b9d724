"""sprig as a Modbus server, driven by mbpoll (a real Modbus master), over TCP and over
RTU through a socat pty pair:
  - the bus's IOs are served in their formats: a float32 (CDAB, mbpoll's float order), an
    int16, a uint32 and a coil read back exactly what their `value` (set through
    `valueSet`, as a person or rule does for a server) holds;
  - what mbpoll writes (a holding register, a float, a coil) appears as the IO's `value`
    point, written by the bus (origin = the bus's id), with quality untouched;
  - the bus answers only its own unit id over RTU (another id times out at mbpoll);
  - SIGTERM exits 0 and the database verifies.
"""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, free_port, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402
from modbus_sim import PtyPair  # noqa: E402




def mbpoll(*args, timeout=20):
    r = subprocess.run(["mbpoll", "-1"] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    return r


def read_values(r):
    """mbpoll's "[ref]: value" lines, as {ref: text} (a 16-bit register reads
    "64302 (-1234)": unsigned, then signed in parentheses)."""
    return {int(m.group(1)): m.group(2).strip()
            for m in re.finditer(r"^\[(\d+)\]:\s+(.*)$", r.stdout, re.M)}


def add(d, nid, ntype, parent, **points):
    pts = []
    for k, v in points.items():
        pts.append({"type": k, "text": v} if isinstance(v, str) else {"type": k, "value": v})
    d.expect(201, "POST", "/v1/nodes", {"id": nid, "type": ntype, "parent": parent,
                                        "points": pts})


def serve(h, d, bus, link, where):
    """IOs of one server bus; checks mbpoll reads and writes through `link` (mbpoll args)."""
    add(d, bus + "-f", "modbusIo", bus, id=1, address=0, modbusIoType="holdingRegister",
        dataFormat="float32", byteOrder="CDAB", valueSet=12.75)
    add(d, bus + "-i", "modbusIo", bus, id=1, address=4, modbusIoType="holdingRegister",
        dataFormat="int16", valueSet=-1234)
    add(d, bus + "-u", "modbusIo", bus, id=1, address=6, modbusIoType="holdingRegister",
        dataFormat="uint32", byteOrder="ABCD", valueSet=305419896)  # 0x12345678
    add(d, bus + "-c", "modbusIo", bus, id=1, address=9, modbusIoType="coil", valueSet=1)
    for io, want in [("-f", 12.75), ("-i", -1234), ("-u", 305419896), ("-c", 1)]:
        wait_until("%s: %s%s value %r" % (where, bus, io, want),
                   lambda: d.points(bus + io).get("value", {}).get("value") == want, 10)

    r = mbpoll(*link, "-t", "4:float", "-r", "1", "-c", "1")
    check(read_values(r).get(1) == "12.75", "%s: mbpoll float at 1: %r" % (where, r.stdout))
    r = mbpoll(*link, "-t", "4", "-r", "5", "-c", "1")
    check(read_values(r).get(5) == "64302 (-1234)", "%s: mbpoll int16 at 5: %r"
          % (where, r.stdout))
    r = mbpoll(*link, "-t", "4:hex", "-r", "7", "-c", "2")
    vals = read_values(r)
    check(vals.get(7) == "0x1234" and vals.get(8) == "0x5678",
          "%s: mbpoll uint32 words at 7, 8: %r" % (where, r.stdout))
    r = mbpoll(*link, "-t", "0", "-r", "10", "-c", "1")
    check(read_values(r).get(10) == "1", "%s: mbpoll coil at 10: %r" % (where, r.stdout))

    # mbpoll writes: they become the IOs' values, written by the bus.
    r = mbpoll(*link, "-t", "4", "-r", "5", "65459")  # -77 as a 16-bit word
    check(r.returncode == 0, "%s: mbpoll write int16: %s %s" % (where, r.stdout, r.stderr))
    r = mbpoll(*link, "-t", "4:float", "-r", "1", "--", "-3.5")
    check(r.returncode == 0, "%s: mbpoll write float: %s %s" % (where, r.stdout, r.stderr))
    r = mbpoll(*link, "-t", "0", "-r", "10", "0")
    check(r.returncode == 0, "%s: mbpoll write coil: %s %s" % (where, r.stdout, r.stderr))
    for io, want in [("-i", -77), ("-f", -3.5), ("-c", 0)]:
        p = wait_until("%s: mbpoll's write shows as %s%s value %r" % (where, bus, io, want),
                       lambda: (d.points(bus + io).get("value", {}).get("value") == want
                                and d.points(bus + io)["value"]), 10)
        check(p["origin"] == bus, "%s: %s%s value written by %r, not the bus"
              % (where, bus, io, p["origin"]))


def test():
    with Harness("modbus-server") as h:
        d = Daemon(h, h.path("srv.db"), "--rules", "off", name="srv")
        root = d.status()["root"]
        port = free_port()
        add(d, "tcpsrv", "modbus", root, clientServer="server", protocol="TCP",
            uri="127.0.0.1:%d" % port)
        wait_until("the TCP server listens", lambda: "serving on port %d" % port
                   in d.proc.stderr(), 10)
        serve(h, d, "tcpsrv", ["-m", "tcp", "-p", str(port), "-a", "1", "127.0.0.1"], "TCP")

        pty = PtyPair(h, "line")
        add(d, "rtusrv", "modbus", root, clientServer="server", protocol="RTU", port=pty.a,
            baud=115200, id=7)
        wait_until("the RTU server opens its port", lambda: "serving on " + pty.a
                   in d.proc.stderr(), 10)
        serve(h, d, "rtusrv", ["-m", "rtu", "-b", "115200", "-P", "none", "-a", "7", pty.b],
              "RTU")
        r = mbpoll("-m", "rtu", "-b", "115200", "-P", "none", "-a", "3", "-o", "0.5", "-t", "4",
                   "-r", "1", pty.b)
        check(read_values(r) == {}, "the RTU server (unit 7) answered unit 3: %r" % r.stdout)
        d.stop()
        h.verify(h.path("srv.db"), expect=0)


if __name__ == "__main__":
    main(test)
