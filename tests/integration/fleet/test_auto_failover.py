"""Automatic failover (issue 9, item 5; fleet/kg_autofo.h): three instances on one PostgreSQL
state, auto_failover enabled. Only a MAJORITY of live instances seeing the primary down for
`after` (and the secondary up) fails the vcluster over; a minority never does; the switch is
audited as automatic; nothing fails back when the primary returns; the controller role moves
to another instance when the controller stops. With SQLite the one instance is its own majority.

"east is unreachable for gw-1 only": gw-1 reaches its cluster "east" at another address than
gw-2 and gw-3 do. Here that address is a second dev cluster (east-1) standing for gw-1's own
network path to east, so freezing it (SIGSTOP: a hung path, probes time out) cuts east for gw-1
alone, and freezing the other (east-2) cuts it for the rest. west is one cluster for all.
"""

import pytest

import kghelpers
from fohelpers import DevCluster, metric
from kghelpers import wait_for
from test_fleet_instances import ADMIN_TOKEN, FleetKgate

pytestmark = pytest.mark.kgate_only

TOPICS = {"af-a": 2}
AFTER = "3s"
AFTER_MS = 3000


@pytest.fixture
def three_clusters(tmp_path):
    started = []
    out = {}
    for name in ("east-1", "east-2", "west"):
        out[name] = DevCluster(name, "2.12", TOPICS, tmp_path)
        started.append(out[name])
    yield out
    for c in started:
        c.stop()


def auto_failover_lines(after=AFTER, min_interval="10m"):
    return [f"auto_failover: {{ enabled: true, after: {after}, min_interval: {min_interval} }}"]


@pytest.fixture
def fleet3(tmp_path, three_clusters, pg_url):
    """[gw-1, gw-2, gw-3] started on this test's database; gw-1's east is east-1, the others'
    east-2."""
    def make(work, name, east):
        kg = FleetKgate({"east": three_clusters[east], "west": three_clusters["west"]}, work,
                        pg_url, name)
        with open(kg.config_path, "a") as f:
            f.write("\n".join(auto_failover_lines()) + "\n")
        return kg.start()

    factory = kghelpers.factory_in_subdirs(tmp_path, "kgate-", make)
    start = next(factory)
    yield [start(name="gw-1", east="east-1"), start(name="gw-2", east="east-2"),
           start(name="gw-3", east="east-2")]
    next(factory, None)


def autofo(kg):
    return kg.status()["auto_failover"]


def controllers(gws):
    return [g.name for g in gws if g.alive() and autofo(g)["controller"]]


def the_controller(gws):
    wait_for(lambda: len(controllers(gws)) == 1, 30, interval=0.2,
             what="exactly one instance to be the auto-failover controller")
    names = controllers(gws)
    assert len(names) == 1, names
    return next(g for g in gws if g.name == names[0])


def last_eval(kg, vc="default"):
    return autofo(kg)["vclusters"][vc].get("last") or {}


def auto_switches(kg):
    return [e for e in kg.audit_entries() if e["type"] == "switch"
            and e["details"].get("actor") == "auto-failover"]


def test_majority_only_never_back_and_the_controller_moves(fleet3, three_clusters):
    gws = fleet3
    ctl = the_controller(gws)
    # Every instance reports its verdicts; the fleet view shows them and who controls.
    wait_for(lambda: all(i.get("probe", {}).get("clusters", {}).get("east", {}).get("up")
                         for i in gws[0].fleet()["instances"]) and
             len(gws[0].fleet()["instances"]) == 3, 30, what="three instances' verdicts: east up")
    wait_for(lambda: [i["name"] for i in ctl.fleet()["instances"]
                      if i["probe"].get("controller")] == [ctl.name], 30,
             what="the controller's row to say so")
    assert metric(ctl.metrics(), "kgate_auto_failover_controller") == 1.0
    others = [g for g in gws if g is not ctl]
    assert metric(others[0].metrics(), "kgate_auto_failover_controller") == 0.0
    epoch0 = gws[0].vcluster_status()["epoch"]
    assert gws[0].vcluster_status()["active"] == "east"

    # A minority (gw-1) loses east: the controller sees 1 of 3 down past `after`, and waits.
    three_clusters["east-1"].freeze()
    gws[0].wait_cluster_up("east", False, timeout=60)

    def minority_judged():
        last = last_eval(ctl)
        v = last.get("verdicts", {}).get("gw-1", {}).get("east", {})
        return v.get("up") is False and v.get("for_ms", 0) >= AFTER_MS + 1000 and \
            last.get("active_down") == ["gw-1"]
    wait_for(minority_judged, 60, interval=0.2,
             what="the controller to judge gw-1's east down for longer than after")
    last = last_eval(ctl)
    assert last["live"] == 3 and last["needed"] == 2, last
    assert last["verdict"].startswith("no failover: east down"), last
    assert "on 1 of 3 live instances" in last["verdict"], last
    for g in gws:
        vc = g.vcluster_status()
        assert (vc["active"], vc["epoch"]) == ("east", epoch0), (g.name, vc)
    assert auto_switches(ctl) == []

    # The rest lose it too: a majority (all three) for `after`: one automatic failover.
    three_clusters["east-2"].freeze()
    wait_for(lambda: all(g.vcluster_status()["active"] == "west" for g in gws), 90,
             interval=0.2, what="the automatic failover to west on every instance")
    switches = auto_switches(ctl)
    assert len(switches) == 1, switches
    d = switches[0]["details"]
    assert d["automatic"] is True and d["from"] == "east" and d["to"] == "west", d
    assert d["epoch"] == epoch0 + 1, d
    assert "on 3 of 3 live instances" in d["reason"], d
    for name in ("gw-1", "gw-2", "gw-3"):
        assert f"{name}: east down" in d["reason"], d
        assert d["evidence"]["verdicts"][name]["west"]["up"] is True, d
    assert sorted(d["evidence"]["active_down"]) == ["gw-1", "gw-2", "gw-3"], d
    # Counted and logged once the switch call returned (every instance acknowledged).
    wait_for(lambda: metric(ctl.metrics(), "kgate_auto_failovers_total",
                            vcluster="default") == 1.0, 30, what="the automatic failover counted")
    wait_for(lambda: "auto-failover: vcluster default switched east -> west" in ctl.log(), 30,
             what="the automatic failover logged")

    # east returns everywhere: never back automatically.
    three_clusters["east-1"].thaw()
    three_clusters["east-2"].thaw()
    for g in gws:
        g.wait_cluster_up("east", True, timeout=60)
    wait_for(lambda: all(i["probe"]["clusters"]["east"]["up"]
                         for i in ctl.fleet()["instances"]), 30,
             what="every instance to report east up again")
    wait_for(lambda: "never goes back" in last_eval(ctl).get("verdict", ""), 30, interval=0.2,
             what="the controller to evaluate with west active")
    for g in gws:
        vc = g.vcluster_status()
        assert (vc["active"], vc["epoch"]) == ("west", epoch0 + 1), (g.name, vc)
    assert len(auto_switches(ctl)) == 1
    out = ctl.cli("status")
    assert out.returncode == 0, out.stderr
    assert "auto-failover default (after 3000 ms): the secondary is active: an automatic " \
        "switch never goes back" in out.stdout, out.stdout
    assert f"auto-failover controller: {ctl.name}" in out.stdout, out.stdout
    out = others[0].cli("status")
    assert f"auto-failover controller: {ctl.name}" in out.stdout, out.stdout

    # The controller stops: another instance takes the lock over.
    ctl.stop()
    rest = [g for g in gws if g is not ctl]
    new = the_controller(rest)
    assert new is not ctl
    assert f"auto-failover: instance {new.name} is the controller" in new.log()


def test_rate_limited_after_a_manual_failback(three_clusters, make_kgate, pg_url):
    """min_interval: after an automatic failover and an operator's failback, the primary dying
    again within min_interval is not failed over automatically (the time is in the store)."""
    kg = make_kgate({"east": three_clusters["east-2"], "west": three_clusters["west"]},
                    state_path=pg_url, token=ADMIN_TOKEN,
                    extra_lines=["instance: { name: solo, lease_ms: 1500 }",
                                 *auto_failover_lines()])
    three_clusters["east-2"].freeze()
    wait_for(lambda: kg.vcluster_status()["active"] == "west", 60, interval=0.2,
             what="the automatic failover")
    three_clusters["east-2"].thaw()
    kg.wait_cluster_up("east", True, timeout=60)
    reply, _, _ = kg.switch("default", failback=True, reason="east is back")
    assert reply.status == 200 and reply.json["changed"] is True, reply
    three_clusters["east-2"].freeze()
    wait_for(lambda: last_eval(kg).get("verdict", "").startswith("rate limited"), 60,
             interval=0.2, what="the rate limit to hold the second failover back")
    assert kg.vcluster_status()["active"] == "east"
    assert len(auto_switches(kg)) == 1
    three_clusters["east-2"].thaw()


def test_sqlite_instance_is_its_own_majority(three_clusters, make_kgate):
    kg = make_kgate({"east": three_clusters["east-1"], "west": three_clusters["west"]},
                    extra_lines=auto_failover_lines())
    assert autofo(kg)["controller"] is True
    epoch0 = kg.vcluster_status()["epoch"]
    three_clusters["east-1"].freeze()
    wait_for(lambda: kg.vcluster_status()["active"] == "west", 60, interval=0.2,
             what="the automatic failover of a lone SQLite instance")
    (entry,) = auto_switches(kg)
    assert entry["details"]["epoch"] == epoch0 + 1
    assert "on 1 of 1 live instances" in entry["details"]["reason"], entry
    three_clusters["east-1"].thaw()


def test_disabled_by_default(three_clusters, make_kgate):
    kg = make_kgate({"east": three_clusters["east-1"], "west": three_clusters["west"]})
    assert "auto_failover" not in kg.status()
    assert not [n for n, _, _ in kg.metrics() if n.startswith("kgate_auto_failover")]
