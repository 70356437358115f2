"""`kgate drain NAME` through another instance (issue 9, item 4): two instances on one PostgreSQL
state; the operator talks to gw-1 only, gw-2 drains (the request goes through the store and is
picked up with gw-2's next lease renewal), the progress shows in `kgate status` of gw-1, and
`kgate drain gw-2 cancel` through gw-1 makes gw-2 serve again."""

import socket

import pytest

from kghelpers import api_versions_v0, round_trip, wait_closed_by_peer, wait_for
from test_fleet_instances import (clusters, fleet, wait_fleet_sees,  # noqa: F401 (fixtures)
                                  )

pytestmark = pytest.mark.kgate_only


def connect(kg):
    host, port = kg.bootstrap("default").rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    round_trip(s, api_versions_v0(1))
    return s


def row(kg, name):
    for i in kg.fleet()["instances"]:
        if i["name"] == name:
            return i
    raise AssertionError(f"{name} missing from {kg.name}'s fleet view")


def test_drain_another_instance_through_one(fleet):
    gw1, gw2 = fleet("gw-1"), fleet("gw-2")
    wait_fleet_sees(gw1, ["gw-1", "gw-2"])
    client = connect(gw2)  # an idle client connection of gw-2
    wait_for(lambda: row(gw1, "gw-2")["connections"] == 1, 30,
             what="gw-1 to see gw-2's client connection")

    out = gw1.cli("drain", "gw-2", "--within", "2s", timeout=120)
    assert out.returncode == 0, (out.stdout, out.stderr, gw2.log()[-3000:])
    # Progress as gw-1 saw it, ending drained.
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "gw-2: drained, 0 connection(s)", out.stdout
    assert wait_closed_by_peer(client, 30), "gw-2 kept its idle client connection"
    ready = gw2.readyz()
    assert ready.status == 503 and ready.json["reason"] == "draining", ready
    assert gw2.http("GET", "/v1/drain").json["state"] == "drained"
    assert row(gw1, "gw-2")["state"] == "drained"
    # gw-1 itself goes on serving.
    assert gw1.readyz().status == 200
    connect(gw1).close()
    # Audited: the request (by gw-1) and the drain (by gw-2, naming who asked through whom).
    entries = gw1.audit_entries()
    asked = [e for e in entries if e["type"] == "drain.requested"]
    assert [(e["details"]["instance"], e["details"]["action"], e["details"]["within_ms"])
            for e in asked] == [("gw-2", "drain", 2000)], asked
    drains = [e for e in entries if e["type"] == "gateway.drain"]
    assert len(drains) == 1 and "(through instance gw-1)" in drains[0]["details"]["actor"], drains
    assert "fleet: drain asked by" in gw2.log()

    # An instance the fleet does not have: a clear error, nothing written.
    bad = gw1.cli("drain", "gw-9")
    assert bad.returncode != 0 and "no live instance 'gw-9' in the fleet (live: gw-1, gw-2)" \
        in bad.stderr, (bad.stdout, bad.stderr)
    assert len([e for e in gw1.audit_entries() if e["type"] == "drain.requested"]) == 1

    # Serving again, asked through gw-1.
    out = gw1.cli("drain", "gw-2", "cancel", timeout=120)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert out.stdout.strip().splitlines()[-1] == "gw-2: serving, 0 connection(s)", out.stdout
    wait_for(lambda: gw2.readyz().status == 200, 30, what="gw-2 ready again")
    connect(gw2).close()


def test_drain_own_name_drains_locally(fleet):
    gw1 = fleet("gw-1")
    out = gw1.cli("drain", "gw-1", "--within", "1s", timeout=120)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert "drained" in out.stdout.splitlines()[-1], out.stdout
    assert gw1.http("GET", "/v1/drain").json["state"] == "drained"
    # No request went through the store for it.
    assert [e for e in gw1.audit_entries() if e["type"] == "drain.requested"] == []
