"""Where frames were dropped in the lab: each namespace's kernel counters of drops and errors (nstat)
and its links' drop and error counts, snapshotted and diffed. A test that finds a loss prints the
difference, so the failure names the place."""
import json

KEYS = ("Drop", "Err", "Overflow", "Prune", "Collapse", "Backlog", "Fail", "Miss", "NoRoute")


def snapshot(lab):
    """{host: {counter: value}} for every host of the lab and the bridge ("br")."""
    out = {}
    for h in list(lab.hosts) + ["br"]:
        r = lab.run(h, "nstat -a -z -j; echo ===; ip -s -j link", check=False, timeout=10)
        snmp, _, links = r.stdout.partition("===")
        vals = {}
        try:
            for table in json.loads(snmp).values():
                vals.update({k: v for k, v in table.items() if any(x in k for x in KEYS)})
        except ValueError:
            pass
        try:
            for link in json.loads(links):
                st = link.get("stats64", {})
                for d in ("rx", "tx"):
                    for k in ("dropped", "errors", "over_errors", "missed"):
                        if k in st.get(d, {}):
                            vals[f"{link['ifname']}.{d}_{k}"] = st[d][k]
        except ValueError:
            pass
        out[h] = vals
    return out


def diff(before, after):
    """{host: {counter: increase}} of the counters that changed."""
    out = {}
    for h, vals in after.items():
        d = {k: v - before.get(h, {}).get(k, 0) for k, v in vals.items() if v != before.get(h, {}).get(k, 0)}
        if d:
            out[h] = d
    return out
