"""The parity pre-flight (issue 10, item 3): before a switch kgate compares the other cluster
with what the virtual cluster's clients used on the active one, and refuses with the list of
differences unless forced. Here west lacks a topic clients produce to and has fewer partitions
of another; a third topic matches. The check itself must never create the missing topic."""

import json

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from fohelpers import DevCluster, metric, wait_for

EAST = {"orders": 3, "payments": 6, "audit": 1}
WEST = {"orders": 3, "payments": 3}


@pytest.fixture
def clusters(tmp_path):
    made = {"east": DevCluster("east", "2.12", EAST, tmp_path),
            "west": DevCluster("west", "2.12", WEST, tmp_path)}
    yield made
    for c in made.values():
        c.stop()


def produce_each(bootstrap, topics):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    errors = []
    for t in topics:
        p.produce(t, b"x", on_delivery=lambda e, m: errors.append(e))
    assert p.flush(30) == 0
    return errors


def topics_of(bootstrap):
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15).topics)


def differences(report):
    return sorted((d["topic"], d["problem"], d.get("from"), d.get("to"))
                  for d in report["differences"])


EXPECTED = [("audit", "missing", None, None), ("payments", "partitions", 6, 3)]


@pytest.mark.guard(120)
def test_switch_refused_until_forced_when_the_other_side_differs(clusters, make_kgate):
    kg = make_kgate(clusters)
    kg.wait_probed()
    assert produce_each(kg.bootstrap("default"), ["orders", "payments", "audit"]) == \
        [None, None, None]

    cp = kg.cli("parity", "default")
    assert cp.returncode == 3, cp.stdout + cp.stderr
    assert "audit" in cp.stdout and "missing" in cp.stdout and "6 -> 3" in cp.stdout
    cp = kg.cli("parity", "default", "--json")
    assert cp.returncode == 3, cp.stdout + cp.stderr
    report = json.loads(cp.stdout)
    assert report["from"] == "east" and report["to"] == "west" and report["topics"] == 3
    assert differences(report) == EXPECTED
    assert report["configs"].startswith("not compared")  # the mock clusters lack DescribeConfigs
    assert metric(kg.metrics(), "kgate_parity_differences", vcluster="default") == 2
    summary = kg.vcluster_status()["parity"]  # the last check, in the status
    assert summary["to"] == "west" and summary["count"] == 2 and summary["checked_at"] > 0

    reply, _, _ = kg.switch("default", to="west", reason="parity drill")
    assert reply.status == 409, reply
    assert "parity check: 2 difference(s)" in reply.json["error"]
    assert kg.vcluster_status()["active"] == "east"
    refused = [e for e in kg.audit_entries() if e["type"] == "switch.refused"][-1]
    assert refused["details"]["parity"]["count"] == 2
    assert "audit" not in topics_of(clusters["west"].bootstrap), "the check created a topic"

    reply, _, _ = kg.switch("default", to="west", reason="parity drill", force=True)
    assert reply.status == 200, reply
    assert kg.vcluster_status()["active"] == "west"
    # after the switch the other side is east, which has everything clients use
    wait_for(lambda: produce_each(kg.bootstrap("default"), ["orders"]) == [None], 30,
             what="a produce through the new side")
    cp = kg.cli("parity", "default", "--json")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert json.loads(cp.stdout)["to"] == "east"
    assert json.loads(cp.stdout)["count"] == 0
