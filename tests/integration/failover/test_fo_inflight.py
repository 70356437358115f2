"""Requests in flight at a switch (issue 10, item 2): a connection of the old side is not cut
while it waits for answers. Within switch.grace_ms it gets the old side's answer and only then
closes, so a producer that does not retry sees no error; past the grace kgate answers in the
old side's place with a retriable error (test_fo_handover.py). A chaos latency rule holds the
answer at kgate, so the request is in flight when the switch comes, every time, whatever the
machine's speed."""

import pytest
from confluent_kafka import Producer

from fohelpers import wait_for

HELD_MS = 600  # how long kgate holds each Produce answer


def producer(kg):
    return Producer({"bootstrap.servers": kg.bootstrap("default"), "acks": "all",
                     "message.send.max.retries": 0, "enable.idempotence": False,
                     "linger.ms": 0, "request.timeout.ms": 20000})


def produce_across_a_switch(kg, on="response", delay_ms=HELD_MS, value=b"in-flight"):
    """Warm the connection, hold the next Produce at kgate (its answer, or with on="request" the
    request itself), switch while it is held: the delivery result of that record."""
    p = producer(kg)
    p.produce("fo-confluent", b"warm-up")
    assert p.flush(20) == 0
    reply = kg.http("POST", "/v1/chaos/rules", {"type": "latency", "id": "hold", "on": on,
                                                "api": "Produce", "delay_ms": delay_ms})
    assert reply.status == 201, reply
    results = []
    p.produce("fo-confluent", value, on_delivery=lambda e, m: results.append(e))
    p.poll(0)
    wait_for(lambda: kg.http("GET", "/v1/chaos/rules/hold").json.get("injected", 0) >= 1, 20,
             what=f"the {on} held at kgate")
    reply, _, _ = kg.switch("default", to="west", reason="in-flight test")
    assert reply.status == 200, reply
    p.flush(30)
    assert len(results) == 1
    return results[0]


@pytest.mark.guard(120)
def test_answer_within_the_grace_reaches_the_client(make_clusters, make_kgate):
    kg = make_kgate(make_clusters(), extra_lines=[f"switch: {{ grace_ms: {HELD_MS * 5} }}"])
    kg.wait_probed()
    assert produce_across_a_switch(kg) is None  # the old side's ack, no error
    assert kg.vcluster_status()["active"] == "west"


@pytest.mark.guard(120)
def test_answer_after_the_grace_is_kgates(make_clusters, make_kgate):
    """Past the grace, kgate answers in the old side's place (test_fo_handover.py has the
    details) with NOT_LEADER_OR_FOLLOWER, which librdkafka sends again even with retries=0: the
    record that a cut connection failed is delivered."""
    kg = make_kgate(make_clusters(), extra_lines=["switch: { grace_ms: 50 }"])
    kg.wait_probed()
    assert produce_across_a_switch(kg) is None
    answers = [v for n, l, v in kg.metrics() if n == "kgate_switch_answers_total"
               and l.get("api") == "Produce"]
    assert answers and answers[0] >= 1


@pytest.mark.guard(120)
def test_request_held_by_chaos_never_reaches_the_old_side(make_clusters, make_kgate):
    """A chaos latency rule holds a Produce request at kgate (not sent yet) when the switch
    comes. Sent on to the old side after its delay, within the grace, the old side would
    acknowledge a record after the switch that the new side never gets. kgate answers it with
    the retriable error instead: the record is delivered once, on the new side."""
    clusters = make_clusters()
    kg = make_kgate(clusters, extra_lines=[f"switch: {{ grace_ms: {HELD_MS * 10} }}"])
    kg.wait_probed()
    assert produce_across_a_switch(kg, on="request", delay_ms=HELD_MS * 3, value=b"held") is None
    held = lambda side: [r for r in clusters[side].read_records("fo-confluent") if r[2] == "held"]
    assert len(held("west")) == 1
    assert held("east") == []
