"""kafka-python (Debian's 2.0.2, pure Python) through kgate: produce, consumer group of two
members, restart from committed offsets, cluster description."""

import threading
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import InvalidRequestError
from kafka.structs import OffsetAndMetadata

TOPIC = "kpy3"
CLIENT = {"request_timeout_ms": 15000, "metadata_max_age_ms": 5000, "reconnect_backoff_ms": 100,
          "api_version_auto_timeout_ms": 10000}


def produce(bootstrap, start, count):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, retries=5, **CLIENT)
    try:
        futures = [p.send(TOPIC, key=b"k%d" % i, value=b"kpy-%d" % i)
                   for i in range(start, start + count)]
        p.flush(30)
        return {(f.get(30).partition, f.get(30).offset) for f in futures}
    finally:
        p.close(10)


class GroupMember(threading.Thread):
    """Polls in its own thread (kafka-python joins the group inside poll()) and commits every
    batch synchronously."""

    def __init__(self, name, bootstrap, group, stop):
        super().__init__(daemon=True)
        self.name_ = name
        self.stop = stop
        self.records = []
        self.assigned = False
        self.error = None
        self.sync_group_quirks = 0
        self.committed = {}  # partition -> next offset, from commits the coordinator accepted
        self.c = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=group,
                               auto_offset_reset="earliest", enable_auto_commit=False,
                               session_timeout_ms=10000, heartbeat_interval_ms=500,
                               max_poll_interval_ms=60000, **CLIENT)

    def run(self):
        try:
            while not self.stop.is_set():
                try:
                    batch = self.c.poll(timeout_ms=100)
                except InvalidRequestError:
                    # librdkafka's mock cluster answers a follower's SyncGroup that arrives after
                    # the leader's with INVALID_REQUEST (a real broker returns the assignment);
                    # kafka-python raises it from poll() and rejoins on the next poll.
                    self.sync_group_quirks += 1
                    continue
                if self.c.assignment():
                    self.assigned = True
                offsets = {}
                for tp, msgs in batch.items():
                    for m in msgs:
                        self.records.append((m.partition, m.offset, m.value))
                    offsets[tp] = OffsetAndMetadata(msgs[-1].offset + 1, None)
                if offsets:
                    try:
                        self.c.commit(offsets)
                        for tp, om in offsets.items():
                            self.committed[tp.partition] = om.offset
                    except Exception:
                        pass  # rebalance in progress: the batch stays uncommitted
        except Exception as e:  # surfaced by the test
            self.error = e
        finally:
            self.c.close()


def all_committed(threads, want):
    """Every partition's committed position is past the last wanted record."""
    committed = {}
    for t in threads:
        for p, o in t.committed.items():
            committed[p] = max(committed.get(p, 0), o)
    return all(committed.get(p, 0) > o for p, o in want)


def run_group(bootstrap, group, members, want, timeout=120):
    """Runs `members` members until they received `want` {(partition, offset)}, all were
    assigned partitions and the coordinator accepted commits covering `want`. Members start one
    after the other, so the second one's arrival rebalances the group."""
    stop = threading.Event()
    threads = [GroupMember(f"m{i}", bootstrap, group, stop) for i in range(members)]
    deadline = time.monotonic() + timeout
    try:
        for t in threads:
            t.start()
            while not t.assigned and not t.error and time.monotonic() < deadline:
                time.sleep(0.05)
        while time.monotonic() < deadline:
            got = {(p, o) for t in threads for p, o, _ in t.records}
            if want <= got and all(t.assigned for t in threads) and all_committed(threads, want):
                break
            if any(t.error for t in threads):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    errors = [t.error for t in threads if t.error]
    assert not errors, errors
    return threads


@pytest.mark.guard(240)
def test_kafka_python_produce_consume_group_restart(kgate):
    """One member at a time: librdkafka's mock cluster answers a follower's SyncGroup that arrives
    after the leader's with INVALID_REQUEST, and kafka-python's follower nearly always arrives
    late, so concurrent kafka-python members thrash for minutes against the mock (rebalances with
    concurrent members are covered by the librdkafka and KafkaJS tests). The group still goes
    through join, assignment, commits, leave, and a new member resuming from the commits."""
    group = "kpy-" + uuid.uuid4().hex[:8]
    first = produce(kgate.bootstrap, 0, 500)
    assert len(first) == 500

    (member,) = run_group(kgate.bootstrap, group, 1, first)
    got = {(p, o) for p, o, _ in member.records}
    assert first <= got, f"{len(first - got)} acknowledged messages not consumed"
    assert {v for _, _, v in member.records} == {b"kpy-%d" % i for i in range(500)}

    second = produce(kgate.bootstrap, 500, 200)
    (restarted,) = run_group(kgate.bootstrap, group, 1, second)
    again = {(p, o) for p, o, _ in restarted.records}
    assert again == second, (f"restart: {len(again & second)} of {len(second)} new records, "
                             f"{len(again - second)} re-read from before the commit")
    assert member.sync_group_quirks == 0 and restarted.sync_group_quirks == 0


def test_kafka_python_cluster_addresses(kgate):
    admin = KafkaAdminClient(bootstrap_servers=kgate.bootstrap, **CLIENT)
    try:
        cluster = admin.describe_cluster()
        topics = admin.list_topics()
    finally:
        admin.close()
    brokers = {(b["node_id"], f'{b["host"]}:{b["port"]}') for b in cluster["brokers"]}
    assert len(brokers) == 3, cluster
    for node_id, address in brokers:
        assert address == kgate.broker_address(node_id)
    assert TOPIC in topics
