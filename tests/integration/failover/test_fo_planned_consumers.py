"""Planned switchover (issue 10, item 6) with more around it: consumer groups, and a chaos rule.

Consumer groups: with the embedded
mirror writing checkpoints, a group whose connections move to the new side goes on from its
translated committed position: no record acknowledged to the producers is missed, and none is
read again that was first received after the switch."""

import time

import pytest

from fohelpers import ClientRun, wait_for
from test_fo_mirror import checkpoints_on
from test_fo_planned import TOPIC, TOPICS, WAIT, finish, planned, producers, start_planned, \
    wait_acks


@pytest.mark.guard(600)
def test_consumers_follow_a_planned_switch_without_gap(make_clusters, make_kgate, tmp_path):
    """Consumer groups across a planned switch: their connections move to the new side, the
    mirror's checkpoints are translated, and each group goes on at its committed position there:
    every acknowledged record is received (no gap), and what is received twice was received
    before the switch and is not a re-read from the start (no auto.offset.reset)."""
    clusters = make_clusters(topics={**TOPICS, "east.checkpoints.internal": 1,
                                     "west.checkpoints.internal": 1})
    kg = start_planned(clusters, make_kgate)
    bs = kg.bootstrap("default")
    runs = [ClientRun("confluent", bs, TOPIC, tmp_path, interval_ms=20,
                      producer_config={"linger.ms": 50}),
            ClientRun("kafka-python", bs, TOPIC, tmp_path, interval_ms=20)]
    for r in runs:
        r.start()
    try:
        for r in runs:
            wait_for(lambda r=r: len(r.received()) >= 200, WAIT,
                     what=f"{r.kind}'s group to consume through kgate\n{r.diagnostics()}")
        # Each group has committed and the mirror has a checkpoint of it on west: from there
        # the group resumes (a group without one follows offsets.policy, docs/config.md).
        wait_for(lambda: {r.group for r in runs} <= {g for g, _, _ in checkpoints_on(
            clusters["west"], "east.checkpoints.internal")}, WAIT,
            what="the mirror's checkpoints of both groups on west")
        t_call = time.time()
        reply = planned(kg, "failover")
        assert reply.status == 200 and reply.json["planned"]["outcome"] == "switched", reply
        # Received by now: read on east, up to the switch (the hold, tens to hundreds of ms,
        # holds Produce only: the groups go on reading east meanwhile, and may read that again
        # on west from their last checkpoint there). What comes after is read on west.
        before = {r.kind: set(r.received()) for r in runs}
        wait_acks(runs, 200)
        for r in runs:
            acked = set(r.ack_times())
            wait_for(lambda r=r, acked=acked: acked <= set(r.received()), WAIT,
                     what=f"{r.kind}'s group to receive every acked record on west "
                          f"({len(acked - set(r.received()))} missing)\n{r.diagnostics()}")
            r.check_healthy()
        for r in runs:
            counts = {}
            for seq, _, _, _ in r.receipts_since(0):
                counts[seq] = counts.get(seq, 0) + 1
            twice = sorted(s for s, n in counts.items() if n > 1)
            print(f"{r.kind}: received {len(r.received())}, {len(twice)} twice, first record "
                  f"after the call received at +"
                  f"{min(t for s, t in r.received().items() if s not in before[r.kind]) - t_call:.2f} s")
            assert set(twice) <= before[r.kind], \
                f"{r.kind}: records first received after the switch came again: " \
                f"{sorted(set(twice) - before[r.kind])[:10]}"
            if twice:
                assert twice[0] > min(before[r.kind]), \
                    f"{r.kind}: re-read from its first record: {twice[:10]}"
    finally:
        for r in runs:
            r.stop()


@pytest.mark.guard(600)
def test_a_planned_switch_under_a_latency_rule(make_clusters, make_kgate, tmp_path):
    """A chaos latency rule on the producers' topic holds each Produce a while when the planned
    switch starts holding too (issue 10, "a planned switch during a chaos rule"): the switch is
    made as planned, the producers (two of them do not retry) see no error and lose nothing,
    and the rule goes on applying on the new side."""
    clusters = make_clusters(topics=TOPICS)
    kg = start_planned(clusters, make_kgate)
    rule = kg.http("POST", "/v1/chaos/rules", {"type": "latency", "vcluster": "default",
                                               "topic": TOPIC, "delay_ms": 30})
    assert rule.status == 201, rule
    rule_path = f"/v1/chaos/rules/{rule.json['id']}"
    runs = producers(kg, tmp_path)
    try:
        wait_acks(runs, 200)
        reply = planned(kg, "failover")
        assert reply.status == 200 and reply.json["planned"]["outcome"] == "switched", reply
        injected = kg.http("GET", rule_path).json["injected"]
        wait_acks(runs, 200)
        assert kg.http("GET", rule_path).json["injected"] > injected
        finish(runs, clusters["west"])
    finally:
        for r in runs:
            r.stop()
