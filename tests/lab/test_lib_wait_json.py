"""lib.jsonmatch on its own: the subset rule of json_cmp and the bounded poll of wait_json. Plain
pytest, no root and no namespaces: a fake status source stands in for `lbctl status --json`."""

import time

import pytest

from lib.jsonmatch import json_cmp, wait_json
from lib.lab import WaitTimeout

STATUS = {
    "node": "lb1",
    "lbd": {"active": True, "flows": 120, "counters": {"rx_frames": 10, "drop_other": 0},
            "services": [{"name": "web", "backends": [{"address": "192.0.2.21", "state": "up"},
                                                      {"address": "192.0.2.22", "state": "down"}]},
                         {"name": "probe", "backends": []}]},
    "vrrpd": {"state": "MASTER", "peer": {"state": "BACKUP"}, "warnings": []},
    "errors": None,
}


@pytest.mark.parametrize("want", [
    {},
    {"node": "lb1"},
    {"lbd": {"active": True, "counters": {"rx_frames": 10}}},
    {"vrrpd": {"peer": {"state": "BACKUP"}}},
    {"lbd": {"services": [{"name": "probe"}]}},                      # containment, any order
    {"lbd": {"services": [{"name": "probe"}, {"name": "web"}]}},
    {"lbd": {"services": [{"backends": [{"state": "down"}]}]}},      # nested lists
    {"lbd": {"services": ({"name": "web"}, {"name": "probe"})}},      # tuple: element-wise
    {"vrrpd": {"warnings": []}},
    {"errors": None, "absent": None},                                 # None: null or missing
    {"lbd": {"flows": lambda n: n >= 100}},                           # predicate
], ids=lambda w: repr(w)[:60])
def test_subsets_that_match(want):
    assert json_cmp(STATUS, want) is None


@pytest.mark.parametrize("want,path", [
    ({"node": "lb2"}, "node"),
    ({"lbd": {"active": False}}, "lbd.active"),
    ({"lbd": {"active": 1}}, "lbd.active"),                            # bool is not a number
    ({"lbd": {"counters": {"rx_frames": 11}}}, "lbd.counters.rx_frames"),
    ({"lbd": {"counters": {"nope": 0}}}, "lbd.counters.nope"),         # missing key
    ({"vrrpd": {"peer": "BACKUP"}}, "vrrpd.peer"),                     # wrong type
    ({"lbd": {"services": [{"name": "dns"}]}}, "lbd.services[0].name"),
    ({"lbd": {"services": [{"name": "web", "backends": [{"state": "gone"}]}]}},
     "lbd.services[0].backends[0].state"),
    ({"lbd": {"services": [{"name": "web"}, {"name": "web"}]}}, "lbd.services[1].name"),  # one each
    ({"lbd": {"services": ({"name": "probe"}, {"name": "web"})}}, "lbd.services[0].name"),
    ({"lbd": {"services": ({"name": "web"},)}}, "lbd.services"),       # tuple: exact length
    ({"node": None}, "node"),
    ({"lbd": {"flows": lambda n: n > 500}}, "lbd.flows"),
    ({"lbd": {"flows": lambda n: n["x"]}}, "lbd.flows"),               # a raising predicate fails
    ({"lbd": {"nope": lambda n: True}}, "lbd.nope"),
], ids=lambda w: repr(w)[:60])
def test_subsets_that_do_not_match_name_the_path(want, path):
    bad = json_cmp(STATUS, want)
    assert bad is not None and bad[0] == path, bad


def test_top_level_null_does_not_match_an_object():
    assert json_cmp(None, {"lbd": {}}) is not None
    assert json_cmp(None, None) is None


class Source:
    """Answers with a counter that rises by one a call; raises on the calls listed in `fail`."""

    def __init__(self, fail=()):
        self.calls = 0
        self.fail = set(fail)

    def __call__(self):
        self.calls += 1
        if self.calls in self.fail:
            raise ConnectionRefusedError("lbd not answering yet")
        return {"lbd": {"counters": {"rx_frames": self.calls}}, "vrrpd": None}


def test_wait_json_returns_the_matching_json():
    src = Source(fail=(1, 2))
    got = wait_json(src, {"lbd": {"counters": {"rx_frames": lambda n: n >= 5}}}, timeout=5, interval=0.001)
    assert got["lbd"]["counters"]["rx_frames"] == 5 and src.calls == 5


def test_wait_json_takes_an_object_with_status():
    class Node:
        def status(self):
            return {"active": True}

    assert wait_json(Node(), {"active": True}, timeout=1) == {"active": True}
    with pytest.raises(TypeError):
        wait_json(42, {}, timeout=1)


def test_wait_json_times_out_with_the_path_and_the_last_json():
    src = Source()
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout) as e:
        wait_json(src, {"lbd": {"counters": {"rx_frames": -1}}}, timeout=0.3, interval=0.02, what="never")
    took = time.monotonic() - t0
    msg = str(e.value)
    assert 0.3 <= took < 2, took
    assert "first mismatch at lbd.counters.rx_frames" in msg, msg
    assert f'"rx_frames": {src.calls}' in msg, msg          # the last JSON seen, not an earlier one
    assert "never" in msg


def test_wait_json_timeout_names_the_last_error():
    def down():
        raise ConnectionRefusedError("no lbd")

    with pytest.raises(WaitTimeout, match="last error: ConnectionRefusedError: no lbd"):
        wait_json(down, {"lbd": {}}, timeout=0.1, interval=0.02)


def test_wait_json_lets_other_errors_through_at_once():
    def dead():
        raise RuntimeError("lbd exited")

    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="lbd exited"):
        wait_json(dead, {}, timeout=5, ignore=(ConnectionRefusedError,))
    assert time.monotonic() - t0 < 1
