"""The sealed Envelope of heartbeats and sync (common/auth.c, proto/heartbeat.proto) rebuilt in
Python, to forge, tamper with and replay messages in the lab, and a sender of spoofed datagrams.

    k = Key.load(path)                        # key id and subkeys, as common/auth.c derives them
    env = decode_envelope(datagram)           # {"version", "key_id", "kind", "sender", "epoch", ...}
    hb = decode_heartbeat(k.open(datagram))   # None if the MAC does not verify
    dgram = k.seal(heartbeat(node="lb2", ...), sender="lb2", epoch=..., counter=1, challenge=...)
    send(lab, "mallory", [dgram, ...], src="192.0.2.12", dst="192.0.2.11")   # or IPv6 addresses

BLAKE2b comes from hashlib (keyed, salt and personal as libsodium's crypto_kdf uses them);
XChaCha20-Poly1305 from libsodium through ctypes. Protobuf is written by hand in the canonical
form protobuf-c packs (fields in number order, proto3 zero values left out, repeated scalars
packed), which is the only form auth_open() accepts.

Run as a script inside a namespace, `envelope.py send` reads {"src", "dst", "sport", "dport",
"datagrams": [hex, ...], "interval", "spoof"} as JSON on stdin and sends each datagram: with
spoof, from a raw socket with the given source address (IPv4: fragmenting what exceeds the MTU;
IPv6: whole datagrams only); else from an ordinary UDP socket. The family is the addresses'.
"""

import ctypes
import ctypes.util
import hashlib
import json
import os
import socket
import struct
import sys
import time

try:
    from .inet import checksum
except ImportError:  # run as a script: this directory is sys.path[0]
    from inet import checksum

VERSION = 1
KIND_HEARTBEAT, KIND_SYNC = 1, 2
AD_TAG = b"dsrlb-envelope-1"
ABYTES = 16
STATE = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}

_sodium = None


def _lib():
    global _sodium
    if _sodium is None:
        lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
        if lib.sodium_init() < 0:
            raise OSError("sodium_init failed")
        u64p, c = ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_char_p
        ull = ctypes.c_ulonglong
        # encrypt(c, clen_p, m, mlen, ad, adlen, nsec, npub, k); decrypt(m, mlen_p, nsec, c, clen, ad, ...)
        lib.crypto_aead_xchacha20poly1305_ietf_encrypt.argtypes = [c, u64p, c, ull, c, ull, c, c, c]
        lib.crypto_aead_xchacha20poly1305_ietf_decrypt.argtypes = [c, u64p, c, c, ull, c, ull, c, c]
        lib.crypto_aead_xchacha20poly1305_ietf_encrypt.restype = ctypes.c_int
        lib.crypto_aead_xchacha20poly1305_ietf_decrypt.restype = ctypes.c_int
        _sodium = lib
    return _sodium


# ----------------------------------------------------------------------------- protobuf

def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field, wt):
    return _varint(field << 3 | wt)


def _f_varint(field, v):
    return _key(field, 0) + _varint(v) if v else b""


def _f_fixed64(field, v):
    return _key(field, 1) + struct.pack("<Q", v) if v else b""


def _f_fixed32(field, v):
    return _key(field, 5) + struct.pack("<I", v) if v else b""


def _f_bytes(field, b):
    return _key(field, 2) + _varint(len(b)) + b if b else b""


def _parse(buf):
    """{field: [values]} of a protobuf message; raises ValueError on bad wire data."""
    out, i = {}, 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            if i >= len(buf) or shift > 63:
                raise ValueError("bad varint")
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while i < len(buf):
        k = varint()
        field, wt = k >> 3, k & 7
        if wt == 0:
            v = varint()
        elif wt == 1:
            v = struct.unpack("<Q", buf[i:i + 8])[0] if i + 8 <= len(buf) else None
            i += 8
        elif wt == 5:
            v = struct.unpack("<I", buf[i:i + 4])[0] if i + 4 <= len(buf) else None
            i += 4
        elif wt == 2:
            n = varint()
            v = bytes(buf[i:i + n]) if i + n <= len(buf) else None
            i += n
        else:
            raise ValueError(f"wire type {wt}")
        if v is None:
            raise ValueError("truncated")
        out.setdefault(field, []).append(v)
    return out


def encode_envelope(version, key_id, kind, sender, epoch, counter, challenge, echo, box):
    return (_f_varint(1, version) + _f_varint(2, key_id) + _f_varint(3, kind)
            + _f_bytes(4, sender.encode()) + _f_fixed64(5, epoch) + _f_fixed64(6, counter)
            + _f_fixed64(7, challenge) + _f_fixed64(8, echo) + _f_bytes(9, box))


def decode_envelope(buf):
    f = _parse(buf)
    one = lambda n, d=0: f.get(n, [d])[-1]  # noqa: E731
    return {"version": one(1), "key_id": one(2), "kind": one(3), "sender": one(4, b"").decode(),
            "epoch": one(5), "counter": one(6), "challenge": one(7), "echo": one(8), "box": one(9, b"")}


def _is_v6(addr):
    return ":" in addr


def heartbeat(node, priority, state="BACKUP", advert_ms=100, vips=(), digest=b"", lbd_healthy=True,
              flows=0, sync_state="", address="0.0.0.0"):
    """A Heartbeat message (proto/heartbeat.proto), packed. As vrrpd's heartbeat_put_addrs: an IPv4
    address goes in `address` (10), an IPv6 one in `address6` (12); IPv4 VIPs in `vips` (5), IPv6
    VIPs in `vips6` (13). With IPv4 addresses only, the bytes are those of an IPv4 pair."""
    packed_vips = b"".join(socket.inet_aton(v) for v in vips if not _is_v6(v))
    vips6 = b"".join(_f_bytes(13, socket.inet_pton(socket.AF_INET6, v)) for v in vips if _is_v6(v))
    address4, address6 = ("0.0.0.0", address) if _is_v6(address) else (address, None)
    return (_f_bytes(1, node.encode()) + _f_varint(2, priority) + _f_varint(3, STATE[state])
            + _f_varint(4, advert_ms) + _f_bytes(5, packed_vips) + _f_bytes(6, digest)
            + _f_varint(7, int(lbd_healthy)) + _f_varint(8, flows) + _f_bytes(9, sync_state.encode())
            + _f_fixed32(10, struct.unpack("<I", socket.inet_aton(address4))[0])
            + (_f_bytes(12, socket.inet_pton(socket.AF_INET6, address6)) if address6 else b"")
            + vips6)


def _ntop6(b):
    """An IPv6 address field as text; a field that is not 16 bytes comes back as its hex."""
    return socket.inet_ntop(socket.AF_INET6, b) if len(b) == 16 else b.hex()


def decode_heartbeat(buf):
    """The fields of a packed Heartbeat as on the wire: "address" (IPv4, 0.0.0.0 when absent) and
    "address6" (None when absent), "vips" (IPv4) and "vips6"."""
    f = _parse(buf)
    one = lambda n, d=0: f.get(n, [d])[-1]  # noqa: E731
    vips = b"".join(f.get(5, []))
    states = {v: k for k, v in STATE.items()}
    return {"node": one(1, b"").decode(), "priority": one(2), "state": states.get(one(3), one(3)),
            "advert_interval_ms": one(4),
            "vips": [socket.inet_ntoa(vips[i:i + 4]) for i in range(0, len(vips), 4)],
            "config_digest": one(6, b"").hex(), "lbd_healthy": bool(one(7)), "flow_count": one(8),
            "sync_state": one(9, b"").decode(), "address": socket.inet_ntoa(struct.pack("<I", one(10))),
            "address6": _ntop6(f[12][-1]) if 12 in f else None, "vips6": [_ntop6(v) for v in f.get(13, [])]}


# ----------------------------------------------------------------------------- keys and sealing

class Key:
    """One cluster key: its public id and per-kind subkeys (auth_key_derive in common/auth.c)."""

    def __init__(self, master):
        assert len(master) == 32
        self.master = master
        h = hashlib.blake2b(b"dsrlb key id", digest_size=32, key=master).digest()
        self.id = struct.unpack(">I", h[:4])[0]
        salt = struct.pack("<Q", 1)  # subkey id 1, little-endian, zero-padded to 16 bytes
        self.sub = {KIND_HEARTBEAT: hashlib.blake2b(b"", digest_size=32, key=master, salt=salt,
                                                    person=b"dsrlb-hb").digest(),
                    KIND_SYNC: hashlib.blake2b(b"", digest_size=32, key=master, salt=salt,
                                               person=b"dsrlb-sy").digest()}

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            data = f.read()
        return cls(bytes.fromhex(data.decode().strip()) if len(data) != 32 else data)

    @classmethod
    def random(cls):
        return cls(os.urandom(32))

    @staticmethod
    def _ad(version, key_id, kind, sender, epoch, counter, challenge, echo):
        s = sender.encode()
        return (AD_TAG + struct.pack(">IIIH", version, key_id, kind, len(s)) + s
                + struct.pack(">QQQQ", epoch, counter, challenge, echo))

    @staticmethod
    def _nonce(kind, epoch, counter, sender):
        return (bytes([kind]) + struct.pack("<QQ", epoch, counter)
                + hashlib.blake2b(sender.encode(), digest_size=32).digest()[:7])

    def seal(self, payload, sender, epoch, counter, challenge, echo=0, kind=KIND_HEARTBEAT,
             key_id=None, version=VERSION):
        """An envelope sealed with this key; key_id claims another key's id if given."""
        kid = self.id if key_id is None else key_id
        ad = self._ad(version, kid, kind, sender, epoch, counter, challenge, echo)
        nonce = self._nonce(kind, epoch, counter, sender)
        box = ctypes.create_string_buffer(len(payload) + ABYTES)
        blen = ctypes.c_ulonglong(0)
        _lib().crypto_aead_xchacha20poly1305_ietf_encrypt(box, ctypes.byref(blen), payload, len(payload),
                                                          ad, len(ad), None, nonce, self.sub[kind])
        return encode_envelope(version, kid, kind, sender, epoch, counter, challenge, echo,
                               box.raw[:blen.value])

    def open(self, datagram):
        """The inner message of an envelope sealed with this key, or None."""
        e = decode_envelope(datagram)
        if len(e["box"]) < ABYTES or e["kind"] not in self.sub:
            return None
        ad = self._ad(e["version"], e["key_id"], e["kind"], e["sender"], e["epoch"], e["counter"],
                      e["challenge"], e["echo"])
        nonce = self._nonce(e["kind"], e["epoch"], e["counter"], e["sender"])
        out = ctypes.create_string_buffer(max(1, len(e["box"])))
        olen = ctypes.c_ulonglong(0)
        rc = _lib().crypto_aead_xchacha20poly1305_ietf_decrypt(out, ctypes.byref(olen), None, e["box"],
                                                               len(e["box"]), ad, len(ad), nonce,
                                                               self.sub[e["kind"]])
        return out.raw[:olen.value] if rc == 0 else None


# ----------------------------------------------------------------------------- sending

def _ip_csum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _send_spoofed(sock, src, dst, sport, dport, payload, ident, mtu=1500):
    """A UDP datagram from any source address, as IP fragments when it exceeds the MTU (checksum
    0: none, which IPv4 UDP allows)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    chunk = (mtu - 20) // 8 * 8
    for off in range(0, len(udp), chunk):
        part = udp[off:off + chunk]
        more = off + chunk < len(udp)
        frag = (0x2000 if more else 0) | (off // 8)
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(part), ident, frag, 64, socket.IPPROTO_UDP, 0,
                          socket.inet_aton(src), socket.inet_aton(dst))
        hdr = hdr[:10] + struct.pack("!H", _ip_csum(hdr)) + hdr[12:]
        sock.sendto(hdr + part, (dst, 0))


def _send_spoofed6(sock, src, dst, sport, dport, payload, mtu=1500):
    """A UDP datagram from any IPv6 source address, whole (no fragment header): the checksum,
    mandatory in IPv6, over the pseudo-header (RFC 8200 section 8.1)."""
    if 40 + 8 + len(payload) > mtu:
        raise ValueError(f"{len(payload)} bytes do not fit one IPv6 packet of {mtu}")
    s6, d6 = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    length = 8 + len(payload)
    pseudo = s6 + d6 + struct.pack("!IxxxB", length, socket.IPPROTO_UDP)
    csum = checksum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, length, csum) + payload
    hdr = struct.pack("!IHBB16s16s", 6 << 28, length, socket.IPPROTO_UDP, 64, s6, d6)
    sock.sendto(hdr + udp, (dst, 0))


def main_send(req):
    grams = [bytes.fromhex(h) for h in req["datagrams"]]
    sent = 0
    v6 = _is_v6(req["src"])
    if req.get("spoof") and v6:
        # An AF_INET6 raw socket of protocol IPPROTO_RAW takes whole packets, header included.
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for g in grams:
            _send_spoofed6(s, req["src"], req["dst"], req["sport"], req["dport"], g)
            sent += 1
            if req.get("interval"):
                time.sleep(req["interval"])
    elif req.get("spoof"):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        for i, g in enumerate(grams):
            _send_spoofed(s, req["src"], req["dst"], req["sport"], req["dport"], g, (os.getpid() + i) & 0xFFFF)
            sent += 1
            if req.get("interval"):
                time.sleep(req["interval"])
    else:
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((req["src"], req["sport"]))
        for g in grams:
            s.sendto(g, (req["dst"], req["dport"]))
            sent += 1
            if req.get("interval"):
                time.sleep(req["interval"])
    print(json.dumps({"sent": sent}))
    return 0


def send(lab, host, datagrams, src, dst, sport=8112, dport=8112, spoof=True, interval=0.0):
    """Send each datagram (bytes) from host's namespace to dst:dport, from src:sport (spoofed
    with a raw socket unless spoof is False), over IPv4 or IPv6 as src and dst are. Returns the
    number sent."""
    req = {"src": src, "dst": dst, "sport": sport, "dport": dport, "spoof": spoof, "interval": interval,
           "datagrams": [bytes(d).hex() for d in datagrams]}
    out = lab.run(host, [sys.executable, os.path.abspath(__file__), "send"], input=json.dumps(req),
                  timeout=10 + interval * len(datagrams)).stdout
    return json.loads(out)["sent"]


if __name__ == "__main__":
    if sys.argv[1:] == ["send"]:
        sys.exit(main_send(json.load(sys.stdin)))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
