"""Acceptance: the Modbus client driver (drivers/modbus; DESIGN.md section 8 "Modbus
conventions"; schema/modbus.lua) against modbus_sim.py (pymodbus 3.0), over Modbus TCP and
over RTU through a socat pty pair. Nodes are created through the API (POST /v1/nodes): a
`modbus` bus (clientServer client, pollPeriod 100 ms, timeout 300 ms) under the root and
`modbusIo` children. Values are compared exactly (the API prints values so that they read
back bit for bit).

It proves, over TCP:
  - every dataFormat x every byteOrder (32 holding-register IOs): registers pre-loaded
    with hand-computed words (the table WORDS below, e.g. uint32 0x11223344 is ABCD
    {0x1122, 0x3344}, CDAB {0x3344, 0x1122}, DCBA {0x4433, 0x2211}, BADC {0x2211,
    0x4433}; a 16-bit value has bytes A B only, so DCBA and BADC swap them and CDAB does
    not) read back as the exact value; the same for input registers (4 formats);
  - `id` is the unit read from (unit 2 holds a different word at the same address);
  - bits 0, 1, 5, 10, 14, 15 of a holding register (0 the least significant) and bits of
    an input register read 0 or 1; coils and discrete inputs read 0 or 1;
  - value = raw * scale + offset (binary-exact scales and offsets, and scale 0.1 compared
    with the same double arithmetic);
  - every IO has quality "good", and the bus's errorCount is 0 after clean reads;
  - writes: valueSet on a holding register of every format x byte order reaches the
    device as the same hand-computed words (the sim's dump), with one FC6 for a 16-bit
    value and one FC16 carrying all the words of a 32/64-bit value, exactly once (no
    write after value equals valueSet); `value` reads back equal to valueSet; a coil is
    set and cleared with FC5;
  - write conventions: an integer format rounds (1234.6 -> 1235, -7.4 -> -7); scale and
    offset are undone (490.25 with scale 0.5 offset -10.25 -> raw 1001); a float32 that
    cannot hold valueSet 0.1 is written once, not forever; a valueSet that does not fit
    (70000 or -1 in a uint16, 40000 in an int16) is refused: nothing on the wire;
  - request grouping (each scenario on its own unit, requests counted by the sim over a
    2 s window): 50 adjacent registers -> exactly one FC3 (0, 50) per poll; 5 registers
    10 apart (9 unused between two) with maxGap 16 -> one (0, 41) per poll, maxGap 9 (the
    boundary) -> one per poll, maxGap 8 and maxGap 4 -> one request per IO; maxRegisters
    10 over 50 adjacent -> exactly 5 requests (0..40 step 10, count 10) per poll; the
    number of polls in the window is consistent with pollPeriod 100 ms;
and over RTU (a pty pair, baud 115200): a subset of formats and byte orders, a bit, an
input register, a coil, a discrete input, a uint32 write (one FC16, exact words) and a
coil write.
SIGTERM exits 0 and `sprig store verify` passes.

modbus_sim.py counts every request on the wire (function code, unit, address, count) in
its stats file; SIGUSR1 makes it dump its tables (see its docstring).
"""
import collections
import os
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main  # noqa: E402
from test_api import Daemon  # noqa: E402
from modbus_sim import ModbusSim, PtyPair  # noqa: E402

POLL_MS = 100
TIMEOUT_MS = 300
SETTLE = 15.0  # s: bound on the first good values of a freshly created bus

FORMATS = ("uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")
ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")

# Hand-computed: the value, its bytes A.. (A the most significant), and the registers
# in each byte order (DESIGN.md section 8: ABCD big-endian; DCBA fully reversed; BADC bytes
# swapped inside each register; CDAB registers in reverse order, big-endian inside; for
# 64-bit values CDAB reverses all four registers).
VALUES = {
    "uint16": 41394,                 # A1 B2
    "int16": -12345,                 # CF C7
    "uint32": 287454020,             # 11 22 33 44
    "int32": -19088744,              # FE DC BA 98
    "uint64": 72623859790382864,     # 01 02 03 04 05 06 07 10 (53 significant bits: a
                                     # double holds it exactly)
    "int64": -72623859790382864,     # FE FD FC FB FA F9 F8 F0
    "float32": -1234.5625,           # C4 9A 52 00 (exact in float32)
    "float64": -98765.4321,          # C0 F8 1C D6 E9 E1 B0 8A
}
WORDS = {
    ("uint16", "ABCD"): [0xA1B2],
    ("uint16", "DCBA"): [0xB2A1],
    ("uint16", "BADC"): [0xB2A1],
    ("uint16", "CDAB"): [0xA1B2],
    ("int16", "ABCD"): [0xCFC7],
    ("int16", "DCBA"): [0xC7CF],
    ("int16", "BADC"): [0xC7CF],
    ("int16", "CDAB"): [0xCFC7],
    ("uint32", "ABCD"): [0x1122, 0x3344],
    ("uint32", "DCBA"): [0x4433, 0x2211],
    ("uint32", "BADC"): [0x2211, 0x4433],
    ("uint32", "CDAB"): [0x3344, 0x1122],
    ("int32", "ABCD"): [0xFEDC, 0xBA98],
    ("int32", "DCBA"): [0x98BA, 0xDCFE],
    ("int32", "BADC"): [0xDCFE, 0x98BA],
    ("int32", "CDAB"): [0xBA98, 0xFEDC],
    ("uint64", "ABCD"): [0x0102, 0x0304, 0x0506, 0x0710],
    ("uint64", "DCBA"): [0x1007, 0x0605, 0x0403, 0x0201],
    ("uint64", "BADC"): [0x0201, 0x0403, 0x0605, 0x1007],
    ("uint64", "CDAB"): [0x0710, 0x0506, 0x0304, 0x0102],
    ("int64", "ABCD"): [0xFEFD, 0xFCFB, 0xFAF9, 0xF8F0],
    ("int64", "DCBA"): [0xF0F8, 0xF9FA, 0xFBFC, 0xFDFE],
    ("int64", "BADC"): [0xFDFE, 0xFBFC, 0xF9FA, 0xF0F8],
    ("int64", "CDAB"): [0xF8F0, 0xFAF9, 0xFCFB, 0xFEFD],
    ("float32", "ABCD"): [0xC49A, 0x5200],
    ("float32", "DCBA"): [0x0052, 0x9AC4],
    ("float32", "BADC"): [0x9AC4, 0x0052],
    ("float32", "CDAB"): [0x5200, 0xC49A],
    ("float64", "ABCD"): [0xC0F8, 0x1CD6, 0xE9E1, 0xB08A],
    ("float64", "DCBA"): [0x8AB0, 0xE1E9, 0xD61C, 0xF8C0],
    ("float64", "BADC"): [0xF8C0, 0xD61C, 0xE1E9, 0x8AB0],
    ("float64", "CDAB"): [0xB08A, 0xE9E1, 0x1CD6, 0xC0F8],
}
PACK = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "uint64": ">Q",
        "int64": ">q", "float32": ">f", "float64": ">d"}


def encode(fmt, order, value):
    """DESIGN.md's rule, mechanically (used only to check the hand-written table)."""
    b = struct.pack(PACK[fmt], value)
    regs = [b[i:i + 2] for i in range(0, len(b), 2)]
    if order == "DCBA":
        rb = b[::-1]
        regs = [rb[i:i + 2] for i in range(0, len(rb), 2)]
    elif order == "BADC":
        regs = [r[::-1] for r in regs]
    elif order == "CDAB":
        regs = regs[::-1]
    return [struct.unpack(">H", r)[0] for r in regs]


def check_table():
    for (fmt, order), words in WORDS.items():
        check(encode(fmt, order, VALUES[fmt]) == words,
              "test bug: WORDS[%s, %s] = %s, the rule gives %s"
              % (fmt, order, [hex(w) for w in words],
                 [hex(w) for w in encode(fmt, order, VALUES[fmt])]))
        check(struct.unpack(PACK[fmt], struct.pack(PACK[fmt], VALUES[fmt]))[0] == VALUES[fmt],
              "test bug: %s does not hold %r exactly" % (fmt, VALUES[fmt]))


# --- API helpers, shared with test_modbus_faults.py --------------------------------------

TEXT_POINTS = {"clientServer", "protocol", "uri", "port", "parity", "description",
               "modbusIoType", "dataFormat", "byteOrder", "units"}


def make_node(d, ntype, parent, nid, pts):
    points = [{"type": k, "text": v} if k in TEXT_POINTS else {"type": k, "value": v}
              for k, v in pts.items()]
    d.expect(201, "POST", "/v1/nodes", {"type": ntype, "parent": parent, "id": nid,
                                        "points": points})


def make_bus(d, parent, nid, **pts):
    """A client bus; TCP when uri= is given, RTU when port= is."""
    conf = {"clientServer": "client", "pollPeriod": POLL_MS, "timeout": TIMEOUT_MS}
    if "uri" in pts:
        conf["protocol"] = "TCP"
    else:
        conf.update(protocol="RTU", baud=115200, parity="none")
    conf.update(pts)
    make_node(d, "modbus", parent, nid, conf)


def make_io(d, bus, nid, unit, address, iotype, **pts):
    conf = {"id": unit, "address": address, "modbusIoType": iotype}
    conf.update(pts)
    make_node(d, "modbusIo", bus, nid, conf)


def io_table(d):
    """{io id: {point type: point}} of every live modbusIo node (key "0", live points)."""
    out = {}
    for n in d.expect(200, "GET", "/v1/nodes?type=modbusIo"):
        out[n["id"]] = {p["type"]: p for p in n["points"]
                        if p["key"] == "0" and not p["tombstone"]}
    return out


def val(pts, t):
    p = pts.get(t)
    return None if p is None else p["value"]


def txt(pts, t):
    p = pts.get(t)
    return None if p is None else p["text"]


def set_point(d, node, t, v):
    d.expect(200, "POST", "/v1/nodes/%s/points" % node, [{"type": t, "value": v}])


def wait_ios(d, want, timeout, what, quality="good"):
    """Waits until every IO in want ({id: value}) has exactly that value and the given
    quality; fails listing every IO that does not. Returns the io_table."""
    deadline = time.monotonic() + timeout
    while True:
        tab = io_table(d)
        bad = []
        for io, v in sorted(want.items()):
            pts = tab.get(io, {})
            if val(pts, "value") != v or txt(pts, "quality") != quality:
                bad.append("  %s: expected %r (%s), got value %r quality %r" % (
                    io, v, quality, val(pts, "value"), txt(pts, "quality")))
        if not bad:
            return tab
        if time.monotonic() > deadline:
            check(False, "%s: within %.0f s, %d of %d IOs are not as expected:\n%s"
                  % (what, timeout, len(bad), len(want), "\n".join(bad)))
        time.sleep(0.1)


def root_of(d):
    return d.status()["root"]


# --- TCP: values ------------------------------------------------------------------------

def fmt_addr(i):
    return 100 + 10 * i


def combos():
    return [(f, o) for f in FORMATS for o in ORDERS]


def io_name(prefix, fmt, order):
    return "%s-%s-%s" % (prefix, fmt, order.lower())


IR_COMBOS = [("uint16", "ABCD"), ("int32", "CDAB"), ("float32", "DCBA"), ("float64", "BADC")]
COILS = [1, 0, 1, 1, 0, 0, 0, 1]      # co 0..7
DINS = [0, 1, 1, 0, 1]                # di 0..4
BITREG = 0x8421                       # hr 500: bits 0, 5, 10, 15 set
SCALED = [  # (id, address, format, words, scale, offset, expected value)
    ("sc-half", 600, "uint16", [1001], 0.5, -10.25, 490.25),
    ("sc-quarter", 601, "int16", [0xFF38], 0.25, 100, 50.0),        # raw -200
    ("sc-float", 602, "float32", [0xC49A, 0x5200], 2, 1, -2468.125),  # -1234.5625
    ("sc-offset", 604, "uint16", [7], None, -7.5, -0.5),
    ("sc-tenth", 605, "uint16", [1234], 0.1, 3, 1234 * 0.1 + 3),
]


def tcp_init():
    hr, ir = {}, {}
    for i, (f, o) in enumerate(combos()):
        hr[fmt_addr(i)] = WORDS[f, o]
    for i, (f, o) in enumerate(IR_COMBOS):
        ir[fmt_addr(i)] = WORDS[f, o]
    hr[500] = BITREG
    ir[500] = 0x0003
    for _, a, _, words, _, _, _ in SCALED:
        hr[a] = words
    return {1: {"hr": hr, "ir": ir, "co": {0: COILS, 300: 1}, "di": {0: DINS}},
            2: {"hr": {100: 0x0102}}}


def tcp_values(h, d, root, sim):
    make_bus(d, root, "mb-tcp", uri="127.0.0.1:%d" % sim.port)
    want = {}
    for i, (f, o) in enumerate(combos()):
        n = io_name("hr", f, o)
        make_io(d, "mb-tcp", n, 1, fmt_addr(i), "holdingRegister", dataFormat=f, byteOrder=o)
        want[n] = VALUES[f]
    for i, (f, o) in enumerate(IR_COMBOS):
        n = io_name("ir", f, o)
        make_io(d, "mb-tcp", n, 1, fmt_addr(i), "inputRegister", dataFormat=f, byteOrder=o)
        want[n] = VALUES[f]
    make_io(d, "mb-tcp", "unit2", 2, 100, "holdingRegister")
    want["unit2"] = 0x0102
    for b in (0, 1, 5, 10, 14, 15):
        make_io(d, "mb-tcp", "bit%d" % b, 1, 500, "holdingRegister", bit=b)
        want["bit%d" % b] = (BITREG >> b) & 1
    for b in (0, 1, 2):
        make_io(d, "mb-tcp", "irbit%d" % b, 1, 500, "inputRegister", bit=b)
        want["irbit%d" % b] = (3 >> b) & 1
    for a in (0, 1, 3, 7):
        make_io(d, "mb-tcp", "coil%d" % a, 1, a, "coil")
        want["coil%d" % a] = COILS[a]
    make_io(d, "mb-tcp", "coil300", 1, 300, "coil")
    want["coil300"] = 1
    for a in (1, 3, 4):
        make_io(d, "mb-tcp", "di%d" % a, 1, a, "discreteInput")
        want["di%d" % a] = DINS[a]
    for nid, a, f, _, scale, offset, v in SCALED:
        pts = {"dataFormat": f}
        if scale is not None:
            pts["scale"] = scale
        if offset is not None:
            pts["offset"] = offset
        make_io(d, "mb-tcp", nid, 1, a, "holdingRegister", **pts)
        want[nid] = v
    t0 = time.monotonic()
    wait_ios(d, want, SETTLE, "TCP reads (every format x byte order, bits, coils, "
             "discrete inputs, input registers, scale/offset)")
    print("TCP: %d IOs read exactly, quality good, %.1f s after creation"
          % (len(want), time.monotonic() - t0))
    # A few polls later they are still good and the bus counted no error.
    time.sleep(5 * POLL_MS / 1000)
    wait_ios(d, want, 2, "TCP reads, 5 poll periods later")
    bp = d.points("mb-tcp")
    for k in ("errorCount", "errorCountTimeout", "errorCountCRC", "errorCountException",
              "errorCountMalformed"):
        check(val(bp, k) in (None, 0), "bus mb-tcp: %s is %r after clean reads, expected 0"
              % (k, val(bp, k)))


# --- TCP: writes ------------------------------------------------------------------------

def write_addr(i):
    return 1000 + 10 * i


EXTRA_WRITES = [  # (id, address, points, valueSet, expected words, expected value)
    ("w-round", 1500, {"dataFormat": "uint16"}, 1234.6, [1235], 1235),
    ("w-round-neg", 1510, {"dataFormat": "int16"}, -7.4, [0xFFF9], -7),
    ("w-scaled", 1520, {"dataFormat": "uint16", "scale": 0.5, "offset": -10.25}, 490.25,
     [1001], 490.25),
    ("w-f32-tenth", 1530, {"dataFormat": "float32"}, 0.1, [0x3DCC, 0xCCCD],
     struct.unpack(">f", struct.pack(">f", 0.1))[0]),
]
REFUSED_WRITES = [  # (id, address, points, valueSet): does not fit the format
    ("w-big", 1600, {"dataFormat": "uint16"}, 70000),
    ("w-neg", 1610, {"dataFormat": "uint16"}, -1),
    ("w-int16", 1620, {"dataFormat": "int16"}, 40000),
]


def tcp_writes(h, d, root, sim):
    want = {}
    for i, (f, o) in enumerate(combos()):
        n = io_name("w", f, o)
        make_io(d, "mb-tcp", n, 1, write_addr(i), "holdingRegister", dataFormat=f,
                byteOrder=o)
        want[n] = 0
    make_io(d, "mb-tcp", "w-coil", 1, 1400, "coil")
    want["w-coil"] = 0
    for nid, a, pts, _, _, _ in EXTRA_WRITES:
        make_io(d, "mb-tcp", nid, 1, a, "holdingRegister", **pts)
        want[nid] = 0 * pts.get("scale", 1) + pts.get("offset", 0)
    for nid, a, pts, _ in REFUSED_WRITES:
        make_io(d, "mb-tcp", nid, 1, a, "holdingRegister", **pts)
        want[nid] = 0
    wait_ios(d, want, SETTLE, "write IOs read 0 before any write")

    t_write = time.time()
    want = {}
    for i, (f, o) in enumerate(combos()):
        n = io_name("w", f, o)
        set_point(d, n, "valueSet", VALUES[f])
        want[n] = VALUES[f]
    set_point(d, "w-coil", "valueSet", 1)
    want["w-coil"] = 1
    for nid, _, _, vs, _, v in EXTRA_WRITES:
        set_point(d, nid, "valueSet", vs)
        want[nid] = v
    for nid, _, _, vs in REFUSED_WRITES:
        set_point(d, nid, "valueSet", vs)
        want[nid] = 0
    t0 = time.monotonic()
    wait_ios(d, want, 10, "value reads back as written after valueSet")
    print("writes: %d IOs read back their valueSet %.2f s after it was posted"
          % (len(want), time.monotonic() - t0))
    time.sleep(15 * POLL_MS / 1000)  # 15 polls: a write repeated forever would show

    dump = sim.dump()[1]
    hr, co = dump["hr"], dump["co"]
    writes = sim.writes(unit=1, since=t_write)
    by_addr = collections.defaultdict(list)
    for r in writes:
        by_addr[r["addr"]].append(r)
    errs = []
    for i, (f, o) in enumerate(combos()):
        a = write_addr(i)
        words = WORDS[f, o]
        got = [hr.get(a + k, 0) for k in range(len(words))]
        if got != words:
            errs.append("%s: registers %d.. hold %s, expected %s"
                        % (io_name("w", f, o), a, [hex(w) for w in got], [hex(w) for w in words]))
        rs = by_addr.get(a, [])
        fc = 6 if len(words) == 1 else 16
        if [(r["fc"], r["count"], r["values"]) for r in rs] != [(fc, len(words), words)]:
            errs.append("%s: expected exactly one FC%d of %s at %d, the device got %s"
                        % (io_name("w", f, o), fc, [hex(w) for w in words], a,
                           [(r["fc"], r["count"], [hex(w) for w in r["values"]]) for r in rs]))
        for k in range(1, len(words)):
            if by_addr.get(a + k):
                errs.append("%s: a write started inside the value, at %d: %s"
                            % (io_name("w", f, o), a + k, by_addr[a + k]))
    if co.get(1400) != 1:
        errs.append("w-coil: coil 1400 is %r after valueSet 1" % co.get(1400, 0))
    rs = by_addr.get(1400, [])
    if [(r["fc"], r["values"]) for r in rs] != [(5, [1])]:
        errs.append("w-coil: expected exactly one FC5 [1] at 1400, the device got %s"
                    % [(r["fc"], r["values"]) for r in rs])
    for nid, a, _, vs, words, _ in EXTRA_WRITES:
        got = [hr.get(a + k, 0) for k in range(len(words))]
        if got != words:
            errs.append("%s (valueSet %r): registers %d.. hold %s, expected %s"
                        % (nid, vs, a, [hex(w) for w in got], [hex(w) for w in words]))
        rs = by_addr.get(a, [])
        if len(rs) != 1 or rs[0]["values"] != words:
            errs.append("%s (valueSet %r): expected one write of %s at %d (then none: value "
                        "and valueSet encode alike), the device got %s"
                        % (nid, vs, [hex(w) for w in words], a,
                           [(r["fc"], [hex(w) for w in r["values"]]) for r in rs]))
    for nid, a, _, vs in REFUSED_WRITES:
        if by_addr.get(a) or hr.get(a):
            errs.append("%s: valueSet %r does not fit %s and must be refused; the device got "
                        "%s and holds %r" % (nid, vs, a, by_addr.get(a), hr.get(a, 0)))
    check(not errs, "writes (sim requests since the valueSets, and its dump):\n  "
          + "\n  ".join(errs))
    print("writes: exact words for 8 formats x 4 byte orders, one FC6/FC16 each, written "
          "once; rounding, scale/offset, float32 0.1 once, 3 refusals: ok")

    # The coil back to 0.
    t_clear = time.time()
    set_point(d, "w-coil", "valueSet", 0)
    wait_ios(d, {"w-coil": 0}, 5, "coil 1400 reads 0 after valueSet 0")
    check(sim.dump()[1]["co"].get(1400, 0) == 0, "coil 1400 is still set after valueSet 0")
    rs = [(r["fc"], r["values"]) for r in sim.writes(unit=1, since=t_clear)
          if r["addr"] == 1400]
    check(rs == [(5, [0])], "coil cleared: expected one FC5 [0] at 1400, got %s" % rs)


# --- request grouping ---------------------------------------------------------------------

def counting(h, d, root):
    """Each scenario has its own unit on one sim and its own bus (TCP connection)."""
    sim = ModbusSim(h, tcp=0, units=(1, 2, 3, 4, 5, 6), name="sim-count",
                    init={u: {"hr": {0: [1000 * u + a for a in range(60)]}}
                          for u in range(1, 7)})
    uri = "127.0.0.1:%d" % sim.port
    scen = [  # (unit, bus config, IO addresses, the requests expected on every poll)
        (1, {}, list(range(50)), [(0, 50)]),
        (2, {"maxGap": 16}, [0, 10, 20, 30, 40], [(0, 41)]),
        (3, {"maxGap": 9}, [0, 10, 20, 30, 40], [(0, 41)]),
        (4, {"maxGap": 8}, [0, 10, 20, 30, 40], [(a, 1) for a in (0, 10, 20, 30, 40)]),
        (5, {"maxGap": 4}, [0, 10, 20, 30, 40], [(a, 1) for a in (0, 10, 20, 30, 40)]),
        (6, {"maxRegisters": 10}, list(range(50)), [(a, 10) for a in range(0, 50, 10)]),
    ]
    want = {}
    for unit, conf, addrs, _ in scen:
        bus = "mb-count-%d" % unit
        make_bus(d, root, bus, uri=uri, **conf)
        for a in addrs:
            n = "c%d-%d" % (unit, a)
            make_io(d, bus, n, unit, a, "holdingRegister")
            want[n] = 1000 * unit + a
    wait_ios(d, want, SETTLE, "request-grouping IOs read their values")
    time.sleep(0.5)
    t0 = time.time()
    time.sleep(2.0)
    t1 = time.time()
    span = t1 - t0
    polls_max = span / (POLL_MS / 1000) + 1
    errs = []
    for unit, conf, addrs, expect in scen:
        rs = sim.reads(unit=unit, since=t0, until=t1)
        got = collections.Counter((r["fc"], r["addr"], r["count"]) for r in rs)
        exp = {(3, a, c) for a, c in expect}
        counts = [got[e] for e in sorted(exp)]
        desc = "unit %d (%d IOs at %s, %s)" % (
            unit, len(addrs), "%d..%d" % (addrs[0], addrs[-1]) if len(addrs) > 5 else addrs,
            ", ".join("%s %s" % kv for kv in conf.items()) or "maxGap 0, maxRegisters 125")
        if set(got) != exp:
            errs.append("%s: expected only the requests %s (fc, address, count) on every "
                        "poll, got %s" % (desc, sorted(exp), dict(got)))
        elif max(counts) - min(counts) > 1:
            errs.append("%s: every request of a poll should be sent once per poll, counts "
                        "over %.1f s: %s" % (desc, span, dict(got)))
        elif not (0.5 * (polls_max - 1) <= min(counts) and max(counts) <= polls_max + 1):
            errs.append("%s: %d..%d polls in %.2f s with pollPeriod %d ms (expected about %d)"
                        % (desc, min(counts), max(counts), span, POLL_MS, polls_max - 1))
        else:
            print("grouping: %s -> %d request(s) per poll (%s), %d polls in %.2f s"
                  % (desc, len(exp), sorted((a, c) for _, a, c in exp)[:5], min(counts), span))
    check(not errs, "request grouping:\n  " + "\n  ".join(errs))


# --- RTU --------------------------------------------------------------------------------

RTU_COMBOS = [("uint16", "ABCD"), ("int16", "DCBA"), ("int32", "CDAB"), ("float32", "BADC"),
              ("float64", "DCBA"), ("uint64", "CDAB")]


def rtu(h, d, root):
    pty = PtyPair(h, "rtu")
    hr = {fmt_addr(i): WORDS[c] for i, c in enumerate(RTU_COMBOS)}
    hr[500] = BITREG
    sim = ModbusSim(h, rtu=pty.a, name="sim-rtu",
                    init={1: {"hr": hr, "ir": {7: 0x7FFF}, "co": {0: COILS}, "di": {0: DINS}}})
    make_bus(d, root, "mb-rtu", port=pty.b)
    want = {}
    for i, (f, o) in enumerate(RTU_COMBOS):
        n = io_name("rtu", f, o)
        make_io(d, "mb-rtu", n, 1, fmt_addr(i), "holdingRegister", dataFormat=f, byteOrder=o)
        want[n] = VALUES[f]
    make_io(d, "mb-rtu", "rtu-bit15", 1, 500, "holdingRegister", bit=15)
    want["rtu-bit15"] = 1
    make_io(d, "mb-rtu", "rtu-bit14", 1, 500, "holdingRegister", bit=14)
    want["rtu-bit14"] = 0
    make_io(d, "mb-rtu", "rtu-ir", 1, 7, "inputRegister", dataFormat="int16")
    want["rtu-ir"] = 0x7FFF
    make_io(d, "mb-rtu", "rtu-coil3", 1, 3, "coil")
    want["rtu-coil3"] = 1
    make_io(d, "mb-rtu", "rtu-di2", 1, 2, "discreteInput")
    want["rtu-di2"] = 1
    make_io(d, "mb-rtu", "rtu-w32", 1, 800, "holdingRegister", dataFormat="uint32",
            byteOrder="DCBA")
    want["rtu-w32"] = 0
    make_io(d, "mb-rtu", "rtu-wcoil", 1, 900, "coil")
    want["rtu-wcoil"] = 0
    t0 = time.monotonic()
    wait_ios(d, want, SETTLE, "RTU reads")
    print("RTU: %d IOs read exactly, quality good, %.1f s after creation"
          % (len(want), time.monotonic() - t0))
    t_write = time.time()
    set_point(d, "rtu-w32", "valueSet", VALUES["uint32"])
    set_point(d, "rtu-wcoil", "valueSet", 1)
    want.update({"rtu-w32": VALUES["uint32"], "rtu-wcoil": 1})
    wait_ios(d, want, 10, "RTU writes read back")
    time.sleep(10 * POLL_MS / 1000)
    dump = sim.dump()[1]
    check([dump["hr"].get(800, 0), dump["hr"].get(801, 0)] == WORDS["uint32", "DCBA"],
          "RTU uint32 DCBA write: registers 800, 801 hold %s, expected %s"
          % ([hex(dump["hr"].get(a, 0)) for a in (800, 801)],
             [hex(w) for w in WORDS["uint32", "DCBA"]]))
    check(dump["co"].get(900) == 1, "RTU coil write: coil 900 is %r" % dump["co"].get(900, 0))
    ws = sorted((r["addr"], r["fc"], r["values"]) for r in sim.writes(unit=1, since=t_write))
    check(ws == [(800, 16, WORDS["uint32", "DCBA"]), (900, 5, [1])],
          "RTU writes: expected one FC16 at 800 and one FC5 at 900, the device got %s" % ws)
    print("RTU: uint32 DCBA write (one FC16, exact words) and coil write: ok")


def test():
    check_table()
    with Harness("modbus-client") as h:
        sim = ModbusSim(h, tcp=0, units=(1, 2), init=tcp_init(), name="sim-tcp")
        d = Daemon(h, h.path("modbus.db"), name="modbus")
        root = root_of(d)
        tcp_values(h, d, root, sim)
        tcp_writes(h, d, root, sim)
        counting(h, d, root)
        rtu(h, d, root)
        check(sim.alive(), "the TCP sim died:\n%s" % sim.stderr()[-2000:])
        d.stop()
        h.verify(d.db, expect=0)


if __name__ == "__main__":
    main(test)
