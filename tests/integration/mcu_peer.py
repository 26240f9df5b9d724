"""A microcontroller on the other end of a serial line, for test_serial.py (standard
library only): it speaks the frames of drivers/serial/serial_frame.h, i.e.
seq (u8) | subject (16 bytes, NUL padded) | payload | CRC-16/KERMIT (little-endian) of
what precedes it, COBS-encoded and ended by a zero byte; an ack is a frame with an empty
subject, an empty payload and the seq it acknowledges.

`McuPeer(path)` opens one end of a pty pair (raw), reads it with a thread that splits the
byte stream on zeros, decodes every frame (COBS, CRC) into `frames` (a list of Frame),
and, while `auto_ack` is true, acknowledges every frame that is not an ack at once.
Every wait is bounded.
"""
import json
import os
import select
import termios
import threading
import time
import tty

SUBJECT = 16


def crc16_kermit(data):
    """CRC-16/KERMIT: reflected poly 0x1021 (0x8408), init 0, no final xor."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


assert crc16_kermit(b"123456789") == 0x2189


def cobs_encode(data):
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(255)
                out += block
                block = bytearray()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data):
    """Raises ValueError on input that is not valid COBS."""
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError("bad COBS code %d at %d of %d" % (code, i, len(data)))
        out += data[i + 1:i + code]
        i += code
        if code != 255 and i < len(data):
            out.append(0)
    return bytes(out)


def raw_frame(seq, subject=b"", payload=b""):
    body = bytes([seq & 0xFF]) + subject.ljust(SUBJECT, b"\0") + payload
    return body + crc16_kermit(body).to_bytes(2, "little")


def wire(raw):
    return cobs_encode(raw) + b"\0"


def frame(seq, subject=b"", payload=b""):
    """The wire bytes of a frame, delimiter included."""
    return wire(raw_frame(seq, subject, payload))


def points_frame(seq, points):
    return frame(seq, b"", json.dumps(points).encode())


class Frame:
    def __init__(self, t, data):
        self.t = t
        self.wire = data
        self.error = None
        self.seq = None
        self.subject = b""
        self.payload = b""
        try:
            raw = cobs_decode(data)
            if len(raw) < 1 + SUBJECT + 2:
                raise ValueError("frame of %d bytes is too short" % len(raw))
            if crc16_kermit(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
                raise ValueError("bad CRC")
            self.seq = raw[0]
            self.subject = raw[1:1 + SUBJECT].rstrip(b"\0")
            self.payload = raw[1 + SUBJECT:-2]
        except ValueError as e:
            self.error = str(e)

    @property
    def is_ack(self):
        return self.error is None and self.subject == b"" and self.payload == b""

    def points(self):
        """The payload as a list of points (or None when it is not a JSON array)."""
        try:
            v = json.loads(self.payload.decode())
        except ValueError:
            return None
        return v if isinstance(v, list) else None

    def __repr__(self):
        if self.error:
            return "<bad frame %s: %r>" % (self.error, self.wire[:40])
        if self.is_ack:
            return "<ack %d>" % self.seq
        return "<frame %d %r %r>" % (self.seq, self.subject, self.payload[:200])


class McuPeer:
    def __init__(self, path, auto_ack=True):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd, termios.TCSANOW)
        self.auto_ack = auto_ack
        self.frames = []
        self.acks_sent = []
        self._cond = threading.Condition()
        self._stop = False
        self.eof = False
        self._wlock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        buf = bytearray()
        try:
            while not self._stop:
                r, _, _ = select.select([self.fd], [], [], 0.1)
                if not r:
                    continue
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                buf += data
                while True:
                    i = buf.find(0)
                    if i < 0:
                        break
                    chunk = bytes(buf[:i])
                    del buf[:i + 1]
                    if not chunk:
                        continue
                    f = Frame(time.monotonic(), chunk)
                    if self.auto_ack and f.error is None and not f.is_ack:
                        self.send(frame(f.seq))
                        self.acks_sent.append(f.seq)
                    with self._cond:
                        self.frames.append(f)
                        self._cond.notify_all()
        finally:
            with self._cond:
                self.eof = True
                self._cond.notify_all()

    def send(self, data):
        with self._wlock:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]

    def count(self):
        with self._cond:
            return len(self.frames)

    def wait_frame(self, pred, timeout, what, start=0):
        """The first frame at index >= start for which pred is true; fails naming `what`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.frames):
                    if pred(self.frames[i]):
                        return i, self.frames[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    break
                self._cond.wait(min(left, 0.2))
            seen = self.frames[start:]
        raise AssertionError("peer on %s: within %.1f s: %s; frames seen since: %r"
                             % (self.path, timeout, what, seen[-10:]))

    def since(self, start):
        with self._cond:
            return list(self.frames[start:])

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        try:
            os.close(self.fd)
        except OSError:
            pass
