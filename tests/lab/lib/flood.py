"""Full-rate load for the lab: trafgen on the generator host floods 64-byte UDP frames to the VIP,
addressed straight to one balancer's MAC, from a few source ports (a few flows over the backends).
Used by tests/soak and tests/lab/test_load_control.py."""

import os

GEN = "gen"
GEN_ADDR = "192.0.2.50"
PORT = 9000                       # lib/pair.py's udp service "probe"
SPORTS = (10000, 10005)           # 6 source ports: 6 flows spread over the backends
FRAME_LEN = 64                    # bytes handed to the device: 14 Ethernet + 20 IPv4 + 8 UDP + payload
PAYLOAD = FRAME_LEN - 14 - 20 - 8


def trafgen_cmd(lab, dst_node, name, cpu=None, nice=None):
    """Writes the trafgen config (frames to VIP:PORT at dst_node's MAC) and returns the command that
    sends it as fast as one process can: pinned to `cpu` and at `nice` when given."""
    ip = f"ipv4(sa={GEN_ADDR}, da={lab.vip}, ttl=64)"
    udp = f"udp(sp=dinc({SPORTS[0]}, {SPORTS[1]}), dp={PORT})"
    text = f"{{ eth(da={lab.mac(dst_node)}, sa={lab.mac(GEN)}), {ip}, {udp}, fill(0x00, {PAYLOAD}) }}\n"
    path = os.path.join(lab.tmpdir, "conf", f"trafgen-{name}.cfg")
    with open(path, "w") as f:
        f.write(text)
    cmd = ["trafgen", "-o", "eth0", "-P", "1", "--no-sock-mem", "-Q", "-i", path]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    if nice is not None:
        cmd = ["nice", "-n", str(nice)] + cmd
    return cmd
