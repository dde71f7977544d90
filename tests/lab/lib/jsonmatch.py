"""Compare a JSON document with the part of it a test expects, and poll until they match: the idea
of FRR topotests' router_json_cmp, for `lbctl status --json`.

    wait_json(lambda: pair.status("lb2"), {"vrrpd": {"state": "MASTER"}, "lbd": {"active": True}}, 3)
    pair.wait_json("lb2", {"lbd": {"flows": lambda n: n >= 100}}, 5)

json_cmp() is pure (no lab, no namespaces) and has a unit test of its own (test_lib_wait_json.py).
"""

import json

from .lab import WaitTimeout, wait_for


class _Missing:
    def __repr__(self):
        return "<missing>"


MISSING = _Missing()


def json_cmp(got, want, path=""):
    """None when `got` contains `want`, else (path, why) of the first mismatch found.

    The rule, applied recursively (the path reads like `lbd.services[1].backends[0].state`):
    - dict: every key of `want` must be in `got` with a matching value; other keys of `got` are
      ignored. A `want` value of None matches a missing key or JSON null.
    - list: containment, in any order: each element of `want` must match its own element of `got`
      (matched greedily, first fit), so `[{"name": "web"}]` matches a list holding a web service
      among others; `[]` matches any list. To require the exact elements, want a tuple: a tuple
      matches a list of the same length element-wise, position by position.
    - callable: a predicate on the value found, e.g. `lambda n: n >= 3` (a missing key fails).
    - anything else: equality, with bool and numbers kept apart (True does not match 1).
    """
    if callable(want):
        if got is MISSING:
            return path, "missing"
        try:
            ok = want(got)
        except Exception as e:  # a predicate meeting the wrong type is a mismatch, not a crash
            return path, f"predicate {_name(want)} raised {type(e).__name__}: {e} on {_short(got)}"
        return None if ok else (path, f"predicate {_name(want)} false for {_short(got)}")
    if want is None:
        return None if got is None or got is MISSING else (path, f"{_short(got)}, want null or missing")
    if got is MISSING:
        return path, f"missing, want {_short(want)}"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return path, f"{_short(got)}, want an object"
        for k, w in want.items():
            bad = json_cmp(got.get(k, MISSING), w, f"{path}.{k}" if path else str(k))
            if bad:
                return bad
        return None
    if isinstance(want, tuple):
        if not isinstance(got, list) or len(got) != len(want):
            return path, f"{_short(got)}, want a list of exactly {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            bad = json_cmp(g, w, f"{path}[{i}]")
            if bad:
                return bad
        return None
    if isinstance(want, list):
        if not isinstance(got, list):
            return path, f"{_short(got)}, want a list"
        free = list(range(len(got)))
        for j, w in enumerate(want):
            fits = [i for i in free if json_cmp(got[i], w) is None]
            if not fits:
                return _closest(got, free, w, f"{path}[?{j}]")
            free.remove(fits[0])
        return None
    if type(got) is bool or type(want) is bool:
        same = type(got) is type(want) and got == want
    else:
        same = got == want
    return None if same else (path, f"{_short(got)}, want {_short(want)}")


def _closest(got, free, want, path):
    """The mismatch of the unused element that matches deepest, to point at what differs."""
    if not free:
        return path, f"no element left for {_short(want)}"
    best = max((json_cmp(got[i], want, f"{path[:path.rindex('[')]}[{i}]") for i in free),
               key=lambda bad: bad[0].count(".") + bad[0].count("["))
    return best[0], f"no element matches {_short(want)}; closest differs here: {best[1]}"


def _name(fn):
    return getattr(fn, "__name__", repr(fn))


def _short(v, limit=200):
    if v is MISSING:
        return "<missing>"
    try:
        s = json.dumps(v, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= limit else s[:limit] + "..."


def _fetcher(source):
    if callable(source):
        return source
    if hasattr(source, "status"):
        return source.status
    raise TypeError(f"wait_json needs a callable or an object with status(), not {source!r}")


def wait_json(source, subset, timeout=5, what=None, interval=0.05, ignore=(Exception,)):
    """Poll `source` until its JSON contains `subset` (the rule of json_cmp) and return that JSON.

    source: a callable returning the parsed JSON (e.g. `lambda: pair.status("lb1")`, None while
    nothing answers), or an object with a status() method (a standalone lbd runner). Exceptions of
    the classes in `ignore` that the source raises count as "not yet"; others propagate at once.
    On timeout raises WaitTimeout (an AssertionError) naming the first mismatching path and the
    last JSON seen."""
    fetch = _fetcher(source)
    seen = {"json": MISSING, "bad": None, "error": None}

    def check():
        try:
            got = fetch()
        except ignore as e:
            seen["error"] = f"{type(e).__name__}: {e}"
            return None
        seen["json"], seen["error"] = got, None
        seen["bad"] = json_cmp(got, subset)
        return got if seen["bad"] is None else None

    try:
        return wait_for(check, timeout, interval, what or f"JSON containing {_short(subset)}", ignore=())
    except WaitTimeout:
        pass
    msg = f"timed out after {timeout}s waiting for {what or 'JSON'} to contain {_short(subset, 1000)}"
    if seen["bad"]:
        msg += f"\nfirst mismatch at {seen['bad'][0] or '(top)'}: {seen['bad'][1]}"
    if seen["error"]:
        msg += f"\nlast error: {seen['error']}"
    if seen["json"] is not MISSING:
        text = json.dumps(seen["json"], indent=1, sort_keys=True, default=repr)
        msg += "\nlast JSON seen:\n" + (text if len(text) <= 6000 else text[:6000] + "\n...")
    raise WaitTimeout(msg)
