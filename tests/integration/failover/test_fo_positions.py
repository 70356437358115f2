"""Consumer positions across a switch. Offsets are per cluster: after a switch a consumer group
must resume from what the new cluster knows (its committed offsets there, else
auto.offset.reset), never from the fetch position it had on the old cluster, or it silently skips
records on the new side.

Deterministic set-up: one partition; east holds 10 records, west 25 (e.g. what replication
copied plus what was produced there). The group reads east's 10 through kgate and commits
offset 10; then the virtual cluster fails over to west. Two cases:
  - west has no committed offset for the group (auto.offset.reset=earliest): every one of west's
    25 records must reach the group;
  - west has the group's committed offset 5 (what offset translation, kg_offsets or MirrorMaker
    2, put there): the group resumes exactly there: west's records 5-24, none of 0-4 (no
    auto.offset.reset applied), none skipped.
A consumer that keeps fetching at its east position (10) on west never sees west's records 0-9.

librdkafka keeps its in-memory fetch positions across the reconnect and fetches at them on the
new side before its group rejoins (and commits them there). kgate stops that (kg_rejoin): until
a member has completed SyncGroup on the new side, its Fetch is answered NOT_LEADER_OR_FOLLOWER and
its OffsetCommit UNKNOWN_MEMBER_ID; after the rejoin its positions come from west's committed
offsets. The librdkafka mock answers a Heartbeat for a group it does not know GROUP_ID_NOT_FOUND,
which kgate translates to UNKNOWN_MEMBER_ID (what Kafka sends): that starts the rejoin."""

import json
import logging
import os
import subprocess
import time

import pytest

from fohelpers import wait_for
from kghelpers import ROOT

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


def commit_directly(cluster, group, offset):
    """The group's committed offset on CLUSTER itself, as offset translation leaves it."""
    from confluent_kafka import TopicPartition
    c = cluster._consumer(group)
    try:
        c.commit(offsets=[TopicPartition(TOPIC, 0, offset)], asynchronous=False)
    finally:
        c.close()


@pytest.mark.guard(120)
@pytest.mark.parametrize("west_committed", [None, 5], ids=["no-commit-on-west", "committed-5"])
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_group_resumes_from_the_new_sides_offsets(client, west_committed, make_clusters,
                                                  make_kgate):
    clusters = make_clusters()
    clusters["east"].fill(TOPIC, 10, prefix="east")
    clusters["west"].fill(TOPIC, 25, prefix="west")
    group = f"fo-pos-{client}"
    if west_committed is not None:
        commit_directly(clusters["west"], group, west_committed)
    kg = make_kgate(clusters)
    consumer = CONSUMERS[client](kg.bootstrap("default"), group)
    try:
        east_values = {f"east-0-{i}" for i in range(10)}
        got = consume_until(consumer, east_values, GROUP_WAIT)
        assert east_values <= {v for _, v in got}, \
            f"east records not consumed: {got}; consumer errors {consumer.errors[-10:]}"
        consumer.commit()
        assert clusters["east"].committed(TOPIC, group) == {0: 10}

        reply, _, _ = kg.switch("default", to="west", reason="positions")
        assert reply.status == 200 and reply.json["changed"], reply

        start = west_committed or 0
        west_values = {f"west-0-{i}" for i in range(start, 25)}
        got = consume_until(consumer, west_values, GROUP_WAIT)
        from_west = [(o, v) for o, v in got if v.startswith("west-")]
        values = {v for _, v in from_west}
        missing = sorted(west_values - values, key=lambda v: int(v.rsplit("-", 1)[1]))
        first = from_west[0] if from_west else None
        assert not missing, (
            f"{client}: after the failover the group never received {len(missing)} of west's "
            f"records from {start} ({missing[0]} .. {missing[-1]}); its first record from west "
            f"was {first}: it kept fetching at its east position (10) instead of resuming from "
            f"west's committed offset or auto.offset.reset=earliest; consumer errors "
            f"{consumer.errors[-10:]}")
        assert first == (start, f"west-0-{start}"), (
            f"{client}: the first record from west was {first}, not west's committed offset "
            f"{start}: the group did not resume where west's offsets say")
        before = sorted(v for o, v in from_west if o < start)
        assert not before, f"{client}: read west's records before its committed offset: {before}"
    finally:
        consumer.close()


RDK_CLIENT = os.path.join(ROOT, "build", "deps", "rdk-client-2.12")


@pytest.mark.guard(150)
@pytest.mark.parametrize("west_committed", [None, 5], ids=["no-commit-on-west", "committed-5"])
def test_librdkafka_212_resumes_from_the_new_sides_offsets(west_committed, make_clusters,
                                                           make_kgate):
    """The same with librdkafka 2.12 (KIP-320 offset validation; build/deps/rdk-client-2.12):
    one consumer, alive across the switch, reads east's 10 records (auto-committing them), then
    west's from west's committed offset (or from the start), and nothing else."""
    if not os.access(RDK_CLIENT, os.X_OK):
        pytest.fail(f"{RDK_CLIENT} missing: run scripts/test-setup")
    clusters = make_clusters()
    clusters["east"].fill(TOPIC, 10, prefix="east")
    clusters["west"].fill(TOPIC, 25, prefix="west")
    group = "fo-pos-rdk212"
    if west_committed is not None:
        commit_directly(clusters["west"], group, west_committed)
    start = west_committed or 0
    kg = make_kgate(clusters)
    proc = subprocess.Popen(
        [RDK_CLIENT, "consume", "-b", kg.bootstrap("default"), "-t", TOPIC, "-g", group, "-n",
         str(10 + 25 - start), "-s", "60", "-X", "enable.auto.commit=true", "-X",
         "auto.commit.interval.ms=200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: clusters["east"].committed(TOPIC, group) == {0: 10}, 60,
                 what="the consumer to read and commit east's 10 records")
        reply, _, _ = kg.switch("default", to="west", reason="positions")
        assert reply.status == 200 and reply.json["changed"], reply
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    records = json.loads(out.decode())["records"]
    assert json.loads(out.decode())["version"].startswith("2.12.")
    from_west = [(o, v) for _, o, v in records if v.startswith("west-")]
    want = [(i, f"west-0-{i}") for i in range(start, 25)]
    assert from_west == want, (
        f"librdkafka 2.12: records from west {from_west}, expected offsets {start}..24 in order "
        f"(the east position is 10); stderr {err.decode()[-2000:]}")
