"""Offset continuity from MirrorMaker 2 checkpoints (issue 10, item 4).

Replication copies records, not offsets: here west holds east's records 40 offsets later on
fo-off (25 later on fo-off-py), as if other records had been there first. A group that stopped at
east offset N must resume at west offset N + 40: no gap, no duplicate. The test writes the
checkpoints itself, in MM2's documented format (connect/mirror Checkpoint, version 0, bytes built
with struct.pack), to `east.checkpoints.internal` on west, and at the switch kgate must:
  - commit the translated offsets of a group that stopped on east (confluent-kafka and
    kafka-python, the latter a client that is not librdkafka);
  - leave alone a group that has a newer commit on west, and one with a live member on west;
  - apply offsets.policy (earliest) to a group it saw committing on east without checkpoints;
  - skip and count records that are no checkpoint;
and the groups then resume on west where the switch put them. A failback reads the topic the
other way (`west.checkpoints.internal` on east). A target that does not answer holds the switch
no longer than offsets.timeout_ms: the switch completes and says what was not done."""

import logging
import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from fohelpers import metric, wait_for
from mm2records import checkpoint_key, checkpoint_value, write_records

# Both sides have both checkpoint topics (MM2 writes each on the target of its direction).
TOPICS = {"fo-off": 2, "fo-off-py": 1, "east.checkpoints.internal": 1,
          "west.checkpoints.internal": 1}
SHIFT = {"fo-off": 40, "fo-off-py": 25}  # west offset = east offset + SHIFT
RECORDS = 100  # per partition, on both sides
WAIT = 30


@pytest.fixture
def clusters(make_clusters):
    return make_clusters(topics=TOPICS)


def with_offsets(kg, offsets_yaml):
    """offsets: for the default vcluster (and parity: warn, so what the clients used is not the
    question here), before the kgate starts."""
    kg.add_vcluster_keys(f"offsets: {{ {offsets_yaml} }}, parity: {{ on_switch: warn }}")


def replicate(clusters):
    """east: rec-P-I at offset I; west: SHIFT older records first, then the same records."""
    for topic, shift in SHIFT.items():
        clusters["east"].fill(topic, RECORDS, prefix="rec")
        clusters["west"].fill(topic, shift, prefix="older")
        clusters["west"].fill(topic, RECORDS, prefix="rec")


# -- MM2's checkpoint records, from the documented format --------------------------------------

def checkpoint(group, topic, partition, upstream, downstream):
    return (checkpoint_key(group, topic, partition), checkpoint_value(upstream, downstream))


CORRUPT = [
    (b"\x00\x05hello", b"garbage"),                                     # no checkpoint at all
    (checkpoint_key("g-x", "fo-off", 0), checkpoint_value(1, 1, version=1)),  # another version
    (None, checkpoint_value(1, 1)),                                      # no key
    (checkpoint_key("g-x", "fo-off", 0), checkpoint_value(1, 1)[:10]),   # cut short
]


# -- consumers -----------------------------------------------------------------------------------

def confluent_consumer(bootstrap, group, topics, reset="earliest"):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": reset, "enable.auto.commit": False,
                  "broker.address.family": "v4", "session.timeout.ms": 6000, "log_level": 3})
    c.subscribe(topics)
    return c


def confluent_consume(c, enough, seconds=WAIT):
    """Polls until enough(records) or the time is up; records: [(topic, partition, offset,
    value)]."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not enough(got):
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        got.append((m.topic(), m.partition(), m.offset(), m.value().decode()))
    return got


def kafka_python_consumer(bootstrap, group, topic, reset="earliest"):
    from kafka import KafkaConsumer
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    return KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         auto_offset_reset=reset, enable_auto_commit=False,
                         session_timeout_ms=6000, heartbeat_interval_ms=1000)


def kafka_python_consume(c, enough, seconds=WAIT):
    from kafka.errors import KafkaError
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not enough(got):
        try:
            batches = c.poll(timeout_ms=200)
        except KafkaError:
            continue
        got += [(r.topic, r.partition, r.offset, r.value.decode())
                for rs in batches.values() for r in rs]
    return got


def per_partition(n_partitions, at_least):
    def enough(got):
        counts = {}
        for _, p, _, _ in got:
            counts[p] = counts.get(p, 0) + 1
        return len(counts) == n_partitions and min(counts.values()) >= at_least
    return enough


def first_per_partition(got):
    first = {}
    for _, p, o, v in got:
        first.setdefault(p, (o, v))
    return first


class BusyMember:
    """A member of GROUP on CLUSTER directly, polling in a thread: the group is not empty."""

    def __init__(self, cluster, group, topic):
        self.c = confluent_consumer(cluster.bootstrap, group, [topic], reset="latest")
        self.assigned = threading.Event()
        self.stop = threading.Event()
        self.c.subscribe([topic], on_assign=lambda c, parts: self.assigned.set())
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.c.poll(0.2)

    def close(self):
        self.stop.set()
        self.thread.join(30)
        self.c.close()


def results_by_group(offsets):
    return {g["group"]: g for g in offsets["groups"]}


# -- the tests -----------------------------------------------------------------------------------

@pytest.mark.guard(300)
def test_groups_resume_at_the_translated_offsets(clusters, make_kgate):
    east, west = clusters["east"], clusters["west"]
    replicate(clusters)
    kg = make_kgate(clusters, start=False)
    with_offsets(kg, "policy: earliest, timeout_ms: 20000")
    kg.start()
    boot = kg.bootstrap("default")

    # Groups consume part of east through kgate and commit there.
    # Each commits a position within what it consumed (as one that processed that far), so
    # records are left after it on both partitions.
    stopped = {0: 30, 1: 37}
    c = confluent_consumer(boot, "g-confluent", ["fo-off"])
    got = confluent_consume(c, per_partition(2, 40))
    assert per_partition(2, 40)(got), got
    c.commit(offsets=[TopicPartition("fo-off", p, o) for p, o in stopped.items()],
             asynchronous=False)
    c.close()
    assert east.committed("fo-off", "g-confluent") == stopped

    from kafka import TopicPartition as KTopicPartition
    from kafka.structs import OffsetAndMetadata
    stopped_py = {0: 33}
    kp = kafka_python_consumer(boot, "g-python", "fo-off-py")
    got = kafka_python_consume(kp, per_partition(1, 40))
    assert per_partition(1, 40)(got), got
    kp.commit({KTopicPartition("fo-off-py", 0): OffsetAndMetadata(33, "")})
    kp.close()
    assert east.committed("fo-off-py", "g-python") == stopped_py

    c = confluent_consumer(boot, "g-policy", ["fo-off"])
    assert per_partition(2, 5)(confluent_consume(c, per_partition(2, 5)))
    c.commit(asynchronous=False)
    c.close()

    # West: a group with a commit of its own there, past its checkpoint; a group with a member.
    direct = Consumer({"bootstrap.servers": west.bootstrap, "group.id": "g-newer",
                       "broker.address.family": "v4", "log_level": 3})
    direct.commit(offsets=[TopicPartition("fo-off", 0, 90)], asynchronous=False)
    direct.close()
    busy = BusyMember(west, "g-busy", "fo-off-py")
    try:
        assert busy.assigned.wait(WAIT), "the member on west never got its partition"

        # MM2's checkpoints on west; the older one of g-confluent first: the latest counts.
        records = [checkpoint("g-confluent", "fo-off", p, 1, 1 + SHIFT["fo-off"])
                   for p in stopped]
        records += CORRUPT[:2]
        records += [checkpoint("g-confluent", "fo-off", p, o, o + SHIFT["fo-off"])
                    for p, o in stopped.items()]
        records += [checkpoint("g-python", "fo-off-py", 0, stopped_py[0],
                               stopped_py[0] + SHIFT["fo-off-py"]),
                    checkpoint("g-newer", "fo-off", 0, 10, 50),
                    checkpoint("g-busy", "fo-off-py", 0, 10, 35)]
        records += CORRUPT[2:]
        write_records(west, "east.checkpoints.internal", records)
        valid = len(records) - len(CORRUPT)

        reply, _, _ = kg.switch("default", to="west", reason="offsets")
        assert reply.status == 200 and reply.json["changed"], reply
        offsets = reply.json["offsets"]
        assert offsets["checkpoint_topic"] == "east.checkpoints.internal", offsets
        assert offsets["checkpoints"] == valid and offsets["records_skipped"] == len(CORRUPT), \
            offsets
        assert "error" not in offsets and "checkpoints_error" not in offsets, offsets
        by_group = results_by_group(offsets)
        assert by_group["g-confluent"]["result"] == "translated", offsets
        assert by_group["g-confluent"]["partitions"] == 2, offsets
        assert by_group["g-python"]["result"] == "translated", offsets
        assert by_group["g-python"]["partitions"] == 1, offsets
        assert by_group["g-policy"]["result"] == "reset earliest", offsets
        assert by_group["g-policy"]["partitions"] == 2, offsets
        assert by_group["g-newer"]["result"] == "skipped: newer commit", offsets
        assert by_group["g-busy"]["result"] == "skipped: not empty", offsets
        assert set(by_group) == {"g-confluent", "g-python", "g-policy", "g-newer", "g-busy"}

        audit = [e for e in kg.audit_entries() if e["type"] == "switch.completed"][-1]
        assert results_by_group(audit["details"]["offsets"]) == by_group
        samples = kg.metrics()
        assert metric(samples, "kgate_offsets_groups_translated_total", vcluster="default") == 2
        assert metric(samples, "kgate_offsets_groups_reset_total", vcluster="default") == 1
        assert metric(samples, "kgate_offsets_checkpoint_records_skipped_total",
                      vcluster="default") == len(CORRUPT)
        assert west.committed("fo-off-py", "g-busy") == {0: -1001}, "a live group was moved"
    finally:
        busy.close()

    assert west.committed("fo-off", "g-confluent") == \
        {p: o + SHIFT["fo-off"] for p, o in stopped.items()}
    assert west.committed("fo-off", "g-newer")[0] == 90, "a newer commit was overwritten"

    # The groups resume on west where they stopped on east: no gap, no duplicate. "latest" as
    # the reset: a group without a committed offset would receive nothing here.
    c = confluent_consumer(boot, "g-confluent", ["fo-off"], reset="latest")
    got = confluent_consume(c, per_partition(2, 1))
    c.close()
    assert first_per_partition(got) == {
        p: (o + SHIFT["fo-off"], f"rec-{p}-{o}") for p, o in stopped.items()}, got[:5]

    kp = kafka_python_consumer(boot, "g-python", "fo-off-py", reset="latest")
    got = kafka_python_consume(kp, per_partition(1, 1))
    kp.close()
    o = stopped_py[0]
    assert first_per_partition(got) == {0: (o + SHIFT["fo-off-py"], f"rec-0-{o}")}, got[:5]

    c = confluent_consumer(boot, "g-policy", ["fo-off"], reset="latest")
    got = confluent_consume(c, per_partition(2, 1))
    c.close()
    assert first_per_partition(got) == {p: (0, f"older-{p}-0") for p in range(2)}, got[:5]

    # Failback: a group that consumed on west only; its checkpoints on east, the other way.
    on_west = {0: SHIFT["fo-off"] + 20, 1: SHIFT["fo-off"] + 25}
    c = confluent_consumer(boot, "g-back", ["fo-off"])
    assert per_partition(2, 70)(confluent_consume(c, per_partition(2, 70)))
    c.commit(offsets=[TopicPartition("fo-off", p, o) for p, o in on_west.items()],
             asynchronous=False)
    c.close()
    assert west.committed("fo-off", "g-back") == on_west
    write_records(east, "west.checkpoints.internal",
                  [checkpoint("g-back", "fo-off", p, o, o - SHIFT["fo-off"])
                   for p, o in on_west.items()])
    reply, _, _ = kg.switch("default", failback=True, reason="offsets back")
    assert reply.status == 200 and reply.json["changed"], reply
    offsets = reply.json["offsets"]
    assert offsets["checkpoint_topic"] == "west.checkpoints.internal", offsets
    assert results_by_group(offsets)["g-back"]["result"] == "translated", offsets
    c = confluent_consumer(boot, "g-back", ["fo-off"], reset="latest")
    got = confluent_consume(c, per_partition(2, 1))
    c.close()
    assert first_per_partition(got) == {
        p: (o - SHIFT["fo-off"], f"rec-{p}-{o - SHIFT['fo-off']}") for p, o in on_west.items()}, \
        got[:5]


@pytest.mark.guard(180)
def test_a_target_that_does_not_answer_holds_the_switch_only_for_the_bound(clusters,
                                                                           make_kgate):
    # The probe looks once (at start) and not again during the test: kgate still takes west
    # for up when it stops answering, so the switch really goes to ask it.
    kg = make_kgate(clusters, start=False, probe_ms=600000)
    with_offsets(kg, "policy: latest, timeout_ms: 1500")
    kg.start()
    clusters["east"].fill("fo-off", 10, prefix="rec")
    c = confluent_consumer(kg.bootstrap("default"), "g-slow", ["fo-off"])
    assert per_partition(2, 1)(confluent_consume(c, per_partition(2, 1)))
    c.commit(asynchronous=False)
    c.close()

    clusters["west"].freeze()
    reply, _, _ = kg.switch("default", to="west", reason="west hangs", force=True)
    assert reply.status == 200 and reply.json["changed"], reply
    offsets = reply.json["offsets"]
    assert "offsets.timeout_ms (1500 ms)" in offsets.get("error", ""), offsets
    assert "checkpoints_error" in offsets, offsets
    assert results_by_group(offsets)["g-slow"]["result"] == "failed", offsets
    assert kg.vcluster_status()["active"] == "west"
    audit = [e for e in kg.audit_entries() if e["type"] == "switch.completed"][-1]
    assert "offsets.timeout_ms" in audit["details"]["offsets"]["error"]
    clusters["west"].thaw()
    wait_for(lambda: kg.alive(), 5, what="kgate alive")
