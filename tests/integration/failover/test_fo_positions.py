"""Consumer positions across a switch. Offsets are per cluster: after a switch a consumer group
must resume from what the new cluster knows (its committed offsets there, else
auto.offset.reset), never from the fetch position it had on the old cluster, or it silently skips
records on the new side.

Deterministic set-up: one partition; east holds 10 records, west 25 (e.g. what replication
copied plus what was produced there). The group reads east's 10 through kgate and commits
offset 10; then the virtual cluster fails over to west, where the group has no committed offset
(auto.offset.reset=earliest). Every one of west's 25 records must reach the group. A consumer
that keeps fetching at its east position (10) on west never sees west's records 0-9.

Against Kafka, a consumer rejoins after a switch: its Heartbeat for a group the new cluster does
not know is answered UNKNOWN_MEMBER_ID, and after the rejoin the position comes from the new
cluster's committed offsets. librdkafka's mock cluster answers GROUP_ID_NOT_FOUND instead, which
neither librdkafka nor KafkaJS treat as "rejoin"; kgate translates it to UNKNOWN_MEMBER_ID (what
Kafka sends), which fixes kafka-python. librdkafka 2.0.2 still keeps its in-memory fetch position:
it fetches from west at its east position before the rejoin, and the mock accepts its commit of
that position, so the rejoin resumes there. That case is an expected failure, documented in
docs/runbook.md: after a switch, consumer groups need offsets translated by replication (e.g.
MirrorMaker 2 checkpoints) or a reset.

The expected failure is narrow: every step before it (the group consumes east's records, commits
offset 10 there, the switch is answered) is a plain assertion for both clients. Only the last
check is expected to fail for librdkafka, and only with that exact symptom: west's records 0-9
never arrive and the first record it receives from west is offset 10 (its east position); then
the test is marked xfail. Any other shortfall fails, and librdkafka receiving all of west's
records fails too (strict: the xfail and the runbook text must then be revisited)."""

import logging
import time

import pytest

# librdkafka (confluent-kafka) keeps its in-memory fetch position across a switch.
KNOWN_POSITION_CARRY_OVER = {"confluent"}
XFAIL_REASON = ("librdkafka keeps its old-cluster fetch position across a switch (in-memory; the "
                "mock accepts its commit): west's records 0-9 skipped, first record from west at "
                "offset 10")

TOPIC = "fo-pos"
GROUP_WAIT = 20


class ConfluentConsumer:
    def __init__(self, bootstrap, group):
        from confluent_kafka import Consumer
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "auto.offset.reset": "earliest", "broker.address.family": "v4",
                           "session.timeout.ms": 6000, "log_level": 3})
        self.c.subscribe([TOPIC])
        self.errors = []  # reported with any failure, never dropped

    def poll(self, timeout):
        m = self.c.poll(timeout)
        if m is None:
            return []
        if m.error():
            assert not m.error().fatal(), f"fatal consumer error: {m.error()}"
            self.errors.append(str(m.error()))
            return []
        return [(m.offset(), m.value().decode())]

    def commit(self):
        self.c.commit(asynchronous=False)

    def close(self):
        self.c.close()


class KafkaPythonConsumer:
    def __init__(self, bootstrap, group):
        from kafka import KafkaConsumer
        # It logs every failed heartbeat (dozens per second here) at ERROR.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        self.c = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=group,
                               auto_offset_reset="earliest", session_timeout_ms=6000,
                               heartbeat_interval_ms=1000)
        self.errors = []  # reported with any failure, never dropped

    def poll(self, timeout):
        from kafka.errors import KafkaError
        try:
            batches = self.c.poll(timeout_ms=int(timeout * 1000))
        except KafkaError as e:  # a rejoin in progress; anything else raises
            self.errors.append(repr(e))
            return []
        return [(r.offset, r.value.decode()) for rs in batches.values() for r in rs]

    def commit(self):
        self.c.commit()

    def close(self):
        self.c.close()


CONSUMERS = {"confluent": ConfluentConsumer, "kafka-python": KafkaPythonConsumer}


def consume_until(consumer, want, seconds):
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not want <= {v for _, v in got}:
        got += consumer.poll(0.2)
    return got


@pytest.mark.guard(120)
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_group_does_not_skip_records_on_the_new_side(client, make_clusters, make_kgate):
    clusters = make_clusters()
    clusters["east"].fill(TOPIC, 10, prefix="east")
    clusters["west"].fill(TOPIC, 25, prefix="west")
    kg = make_kgate(clusters)
    consumer = CONSUMERS[client](kg.bootstrap("default"), f"fo-pos-{client}")
    try:
        east_values = {f"east-0-{i}" for i in range(10)}
        got = consume_until(consumer, east_values, GROUP_WAIT)
        assert east_values <= {v for _, v in got}, \
            f"east records not consumed: {got}; consumer errors {consumer.errors[-10:]}"
        consumer.commit()
        assert clusters["east"].committed(TOPIC, f"fo-pos-{client}") == {0: 10}

        reply, _, _ = kg.switch("default", to="west", reason="positions")
        assert reply.status == 200 and reply.json["changed"], reply

        west_values = {f"west-0-{i}" for i in range(25)}
        got = consume_until(consumer, west_values, GROUP_WAIT)
        values = {v for _, v in got}
        missing = sorted(west_values - values, key=lambda v: int(v.rsplit("-", 1)[1]))
        first = got[0] if got else None
        if client in KNOWN_POSITION_CARRY_OVER:
            carried_over = {f"west-0-{i}" for i in range(10)}
            if set(missing) == carried_over and first is not None and first[0] == 10:
                pytest.xfail(XFAIL_REASON)
            assert missing, (f"{client} received all of west's records after the switch: the "
                             f"expected failure ({XFAIL_REASON}) is gone; update "
                             f"KNOWN_POSITION_CARRY_OVER and docs/runbook.md")
        assert not missing, (
            f"{client}: after the failover the group never received {len(missing)} of west's 25 "
            f"records ({missing[0]} .. {missing[-1]}); its first record from west was {first}: "
            f"it kept fetching at its east position (10) instead of resuming from west's "
            f"committed offset or auto.offset.reset=earliest; consumer errors "
            f"{consumer.errors[-10:]}")
    finally:
        consumer.close()
