"""Block a node's sync (or any TCP) port with an nftables table of its own, `syncblock`, and remove it.

    block_tcp(lab, "lb2", 8113, "output", "reject with tcp reset")   # its connections fail at once
    block_tcp(lab, "lb4", 8113, "input", "drop")                     # connections to it hang
    block_tcp(lab, "lb4", 8113, on=False)                            # gone again (no error if absent)
"""

TABLE = "syncblock"


def block_tcp(lab, node, port, hook="output", verdict="drop", on=True):
    if not on:
        lab.run(node, ["nft", "delete", "table", "inet", TABLE], check=False, timeout=10)
        return
    rules = (f"table inet {TABLE} {{\n chain c {{\n  type filter hook {hook} priority 0; policy accept;\n"
             f"  tcp dport {port} {verdict}\n }}\n}}\n")
    lab.run(node, ["nft", "-f", "-"], input=rules, timeout=10)
