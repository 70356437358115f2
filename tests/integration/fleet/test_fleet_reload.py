"""A vcluster added by a reload in a fleet (issue 9, item 4; docs/fleet.md): the store holds
every vcluster's active side and epoch by name, so an instance that adds a vcluster takes the
side the fleet switched it to before, and follows the switches made through another instance
after.

Two instances on one PostgreSQL database: gw-2 serves default and bee from its start, gw-1 only
default until its reload adds bee."""

import pytest

from fohelpers import ClientRun
from kghelpers import wait_for
from test_fleet_instances import FleetKgate, wait_fleet_sees

pytestmark = pytest.mark.kgate_only

TOPICS = {"fr-a": 3}


def instance(clusters, work_dir, state_url, name):
    # A short ack wait: gw-1 does not acknowledge bee's epochs before it has bee.
    return FleetKgate(clusters, work_dir, state_url, name, ack_timeout_ms=1500,
                      vclusters=(("default", "east", "west"), ("bee", "east", "west")))


def bee_line(text):
    return next(line for line in text.splitlines(keepends=True) if line.startswith("  bee: {"))


@pytest.mark.guard(300)
def test_a_vcluster_added_by_reload_follows_the_fleet(make_clusters, pg_url, tmp_path):
    clusters = make_clusters(topics=TOPICS)
    for d in ("gw-1", "gw-2"):
        (tmp_path / d).mkdir()
    gw1 = instance(clusters, tmp_path / "gw-1", pg_url, "gw-1")
    gw2 = instance(clusters, tmp_path / "gw-2", pg_url, "gw-2")
    run = None
    try:
        with open(gw1.config_path) as f:
            full = f.read()
        with open(gw1.config_path, "w") as f:
            f.write(full.replace(bee_line(full), ""))
        bee_port = gw1.ports.pop("bee")  # start() waits for every port in ports
        gw1.start()
        gw1.ports["bee"] = bee_port
        gw2.start()
        wait_fleet_sees(gw1, ["gw-1", "gw-2"])

        # Switched through gw-2 while gw-1 does not serve bee: gw-1 cannot acknowledge it.
        reply, _, _ = gw2.switch("bee", to="west")
        assert reply.status == 200, reply
        assert reply.json["epoch"] == 1, reply.json
        assert "gw-1" in reply.json["instances"]["pending"], reply.json

        # gw-1's reload adds bee on the side and epoch the store has.
        with open(gw1.config_path, "w") as f:
            f.write(full)
        reply = gw1.http("POST", "/v1/reload")
        assert reply.status == 200, reply
        added = [a for a in reply.json["applied"] if a.startswith("vcluster bee added:")]
        assert added and "active west (epoch 1)" in added[0], reply.json
        bee = gw1.vcluster_status("bee")
        assert (bee["active"], bee["epoch"]) == ("west", 1), bee

        run = ClientRun("confluent", gw1.bootstrap("bee"), "fr-a", tmp_path, consume=False,
                        label="gw1-bee").start()
        wait_for(lambda: (run.check_healthy() or True) and len(run.ack_times()) >= 20, 60,
                 what="a producer through gw-1's bee")

        # A failback through gw-2 reaches gw-1: acknowledged, applied, its client moved.
        reply, _, _ = gw2.switch("bee", failback=True)
        assert reply.status == 200, reply
        assert reply.json["epoch"] == 2, reply.json
        assert "gw-1" in reply.json["instances"]["acked"], reply.json
        bee = gw1.vcluster_status("bee")
        assert (bee["active"], bee["epoch"]) == ("east", 2), bee
        n = len(run.ack_times())
        wait_for(lambda: len(run.ack_times()) >= n + 20, 60,
                 what="the producer through gw-1's bee after the failback")
        assert gw1.vcluster_status("default")["epoch"] == 0
    finally:
        if run:
            run.stop()
        for kg in (gw1, gw2):
            kg.stop()
