"""The Internet checksum (RFC 1071), for the packets the lab's scripts build by hand (ICMP echo,
ICMPv6 neighbour discovery). Standard library only: the scripts run alone inside a namespace."""

import struct


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
