"""A planned switchover in a fleet with MirrorMaker 2 as the replication (issue 10, item 6;
docs/runbook.md "Planned switchover", "With MirrorMaker 2" and "in a fleet"): no instance runs
a mirror; the coordinator reads MM2's offset syncs itself while every instance holds its
producers. The test plays MM2 (test_fo_planned_mm2.Mm2Copier). While MM2 is stopped the switch
aborts and every instance's held requests go to the old side; once it copies again the switch
happens once, every instance relays to the new side, and every record the producers were told
was written is on west exactly once, in order, with nothing left for MM2 to copy."""

import pytest

import fohelpers
from fohelpers import ClientRun
from test_fleet_planned import check_switched, planned
from test_fo_planned_mm2 import TOPIC, TOPICS, in_order, prepare
from test_fo_planned import wait_acks

WAIT = 90


def start_fleet(clusters, make_kgate, pg_url, names):
    kgs = []
    for name in names:
        kg = make_kgate(clusters, start=False, state_path=pg_url,
                        extra_lines=[f"instance: {{ name: {name}, lease_ms: 1500 }}"])
        kg.add_vcluster_keys("replication: { kind: mirrormaker2 }")
        kg.instance = name
        kgs.append(kg.start())
    return kgs


@pytest.mark.guard(900)
def test_fleet_planned_switch_waits_for_mm2_on_every_instance(make_clusters, make_kgate, pg_url,
                                                              tmp_path):
    clusters = make_clusters(topics=TOPICS)
    west = clusters["west"]
    copier = prepare(clusters)
    kgs = start_fleet(clusters, make_kgate, pg_url, ["p1", "p2"])
    p1, p2 = kgs
    no_retry = {"linger.ms": 20, "message.send.max.retries": 0, "enable.idempotence": False}
    runs = [ClientRun("confluent", kg.bootstrap("default"), TOPIC, tmp_path, interval_ms=5,
                      producer_config=no_retry, label=f"{kg.instance}-noretry", consume=False)
            for kg in kgs]
    for r in runs:
        r.start()
    try:
        wait_acks(runs, 200)
        copier.pause()  # MM2 stopped: its lag grows, the switch aborts fleet-wide
        wait_acks(runs, 100)
        reply = planned(p1, "failover", hold_max_ms=3000)
        assert reply.status == 409 and reply.json["error"].startswith("replication lag"), \
            reply.json
        report = reply.json["planned"]
        assert report["replication"] == "mirrormaker2" and report["lag_at_abort"][TOPIC], report
        assert {i["released_to"] for i in report["instances"].values()} == {"old side"}, report
        assert {kg.vcluster_status()["active"] for kg in kgs} == {"east"}

        copier.resume()
        wait_acks(runs, 100)
        reply = planned(p2, "failover")  # the other instance coordinates this one
        copied_at_switch = copier.copied()
        report = check_switched(reply, kgs, "west")
        print("fleet planned failover with MM2:", report)
        assert report["replication"] == "mirrormaker2", report
        fohelpers.finish_runs(runs, west, TOPIC, WAIT)  # nothing lost, no client error
        assert copier.copied() == copied_at_switch  # nothing was left to copy
        for r in runs:
            in_order(r, west)
    finally:
        for r in runs:
            r.stop()
        copier.stop()
