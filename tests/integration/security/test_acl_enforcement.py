"""ACLs enforced at kgate (issue 8, item 5), with real clients (confluent-kafka, librdkafka
2.0.2): produce, consume in a group, Metadata, each allowed and denied with Kafka's own error
codes; a deny binding beating a prefixed allow; a request naming an allowed and a denied topic
at once; a binding added at run time applying to the next request; and the same principal
getting the same answers before and after a failover from a 2.0.2 mock cluster to a 2.12 one."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from kghelpers import DevCluster, stop_all, wait_for
from secgate import SECURITY_TOPICS, librdkafka_sasl
from tlsgate import Gate

PASSWORD = "pw-secret"
BINDINGS = [
    {"principal": "User:alice", "permission": "allow", "resource_type": "topic",
     "resource_name": "sec", "pattern_type": "prefixed", "operations": ["Write", "Describe"]},
    {"principal": "User:alice", "permission": "allow", "resource_type": "topic",
     "resource_name": "sec3", "operation": "Read"},
    {"principal": "User:alice", "permission": "deny", "resource_type": "topic",
     "resource_name": "sec1", "operation": "Write"},
    {"principal": "User:alice", "permission": "allow", "resource_type": "group",
     "resource_name": "g-alice", "pattern_type": "prefixed", "operation": "Read"},
    {"principal": "User:bob", "permission": "allow", "resource_type": "topic",
     "resource_name": "sec1", "operation": "Describe"},
    {"principal": "User:*", "permission": "allow", "resource_type": "topic",
     "resource_name": "fo3", "operation": "Describe"},
]


@pytest.fixture
def gate(tmp_path):
    """kgate (auth: gateway, acls: enabled) on east (librdkafka 2.0.2's mock) with west
    (2.12's) as its secondary; users alice and bob; the bindings above."""
    east = DevCluster("2.0.2", tmp_path, SECURITY_TOPICS, name="east")
    west = DevCluster("2.12", tmp_path, SECURITY_TOPICS, name="west")
    work = tmp_path / "gate"
    work.mkdir()
    g = Gate(work, [f'east: {{ bootstrap: "{east.bootstrap}" }}',
                    f'west: {{ bootstrap: "{west.bootstrap}" }}'],
             ["primary: east", "secondary: west", "auth: gateway", "acls: enabled",
              "listener:", "  sasl: [SCRAM-SHA-512]"])
    for user in ("alice", "bob"):
        g.users_add(user, "SCRAM-SHA-512", PASSWORD)
    for b in BINDINGS:
        reply = g.admin("POST", "/v1/acls", b)
        assert reply.status == 201, reply
    wait_for(lambda: all(g.cluster_status(n)["up"] for n in ("east", "west")), 20,
             what="both clusters probed")
    yield g
    stop_all([g, east, west])


def conf(user):
    return librdkafka_sasl("SCRAM-SHA-512", user, PASSWORD)


def produce(g, user, records):
    """RECORDS: [(topic, value)] in one flush; the delivery error code of each (0 = acked)."""
    p = Producer({"bootstrap.servers": f"127.0.0.1:{g.base}", "acks": "all", "linger.ms": 100,
                  "message.send.max.retries": 0, **conf(user)})
    results = {}
    for topic, value in records:
        p.produce(topic, value, on_delivery=lambda e, m, t=topic: results.setdefault(
            t, []).append(e.code() if e else 0))
    assert p.flush(30) == 0
    return results


def visible_topics(g, user):
    md = AdminClient({"bootstrap.servers": f"127.0.0.1:{g.base}",
                      **conf(user)}).list_topics(timeout=15)
    return sorted(t for t, m in md.topics.items() if m.error is None)


def consume_error_or_values(g, user, topic, group, want=1, timeout=30):
    """Values consumed in GROUP, or the first error code the consumer reports."""
    c = Consumer({"bootstrap.servers": f"127.0.0.1:{g.base}", "group.id": group,
                  "auto.offset.reset": "earliest", **conf(user)})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() in (KafkaError._PARTITION_EOF,):
                    continue
                return m.error().code()
            got.append(m.value())
    finally:
        c.close()
    return got


def answers(g, tag):
    """What alice and bob get; the same dict is expected on either cluster."""
    out = {
        "alice produce sec3": produce(g, "alice", [("sec3", tag + b"-a")])["sec3"],
        "alice produce sec1 (deny beats prefixed allow)":
            produce(g, "alice", [("sec1", b"x")])["sec1"],
        "bob produce sec3": produce(g, "bob", [("sec3", b"x")])["sec3"],
        "alice metadata": visible_topics(g, "alice"),
        "bob metadata": visible_topics(g, "bob"),
    }
    mixed = produce(g, "alice", [("sec3", tag + b"-m"), ("sec1", b"y")])
    out["alice one request, sec3 and sec1"] = (mixed["sec3"], mixed["sec1"])
    consumed = consume_error_or_values(g, "alice", "sec3", f"g-alice-{tag.decode()}", want=2)
    out["alice consumes sec3 in g-alice-*"] = isinstance(consumed, list) and len(consumed) >= 2
    out["alice consumes sec1 (no Read)"] = consume_error_or_values(
        g, "alice", "sec1", f"g-alice-{tag.decode()}-2")
    out["bob consumes in g-bob"] = consume_error_or_values(g, "bob", "sec1", "g-bob")
    return out


EXPECTED = {
    "alice produce sec3": [0],
    "alice produce sec1 (deny beats prefixed allow)": [KafkaError.TOPIC_AUTHORIZATION_FAILED],
    "bob produce sec3": [KafkaError.TOPIC_AUTHORIZATION_FAILED],
    "alice metadata": ["fo3", "sec1", "sec3"],
    "bob metadata": ["fo3", "sec1"],
    "alice one request, sec3 and sec1": ([0], [KafkaError.TOPIC_AUTHORIZATION_FAILED]),
    "alice consumes sec3 in g-alice-*": True,
    "alice consumes sec1 (no Read)": KafkaError.TOPIC_AUTHORIZATION_FAILED,
    "bob consumes in g-bob": KafkaError.GROUP_AUTHORIZATION_FAILED,
}


def test_same_answers_on_either_cluster(gate):
    before = gate.metric("kgate_acl_denials_total", vcluster="default")
    assert answers(gate, b"east") == EXPECTED
    assert gate.metric("kgate_acl_denials_total", vcluster="default") > before
    reply = gate.admin("POST", "/v1/vclusters/default/failover", {"reason": "acl drill"})
    assert reply.status == 200, reply
    assert answers(gate, b"west") == EXPECTED
    assert "ACLs deny Write on topic sec1 to User:alice" in gate.log()


def test_bindings_apply_at_run_time(gate):
    assert produce(gate, "bob", [("sec3", b"x")])["sec3"] == [
        KafkaError.TOPIC_AUTHORIZATION_FAILED]
    reply = gate.admin("POST", "/v1/acls", {
        "principal": "User:bob", "permission": "allow", "resource_type": "topic",
        "resource_name": "sec3", "operation": "Write"})
    assert reply.status == 201, reply
    assert produce(gate, "bob", [("sec3", b"x")])["sec3"] == [0]
    reply = gate.admin("DELETE", "/v1/acls?principal=User:bob&resource_type=topic"
                                 "&resource_name=sec3")
    assert reply.status == 200, reply
    assert produce(gate, "bob", [("sec3", b"x")])["sec3"] == [
        KafkaError.TOPIC_AUTHORIZATION_FAILED]


def idempotent_produce(g, user, topic):
    """Delivery codes of two records from an idempotent producer (InitProducerId without a
    transactional id first), or the fatal error code it stops with."""
    p = Producer({"bootstrap.servers": f"127.0.0.1:{g.base}", "enable.idempotence": True,
                  **conf(user)})
    codes = []
    try:
        for v in (b"i1", b"i2"):
            p.produce(topic, v, on_delivery=lambda e, m: codes.append(e.code() if e else 0))
            p.flush(30)
    except KafkaException as e:  # the fatal error of a refused InitProducerId
        return e.args[0].code()
    return codes


def transaction(g, user, txn_id, topic):
    """'committed' after a transaction producing to TOPIC, or the KafkaError code that stopped
    it (init, AddPartitionsToTxn via produce, or commit)."""
    p = Producer({"bootstrap.servers": f"127.0.0.1:{g.base}", "transactional.id": txn_id,
                  "transaction.timeout.ms": 30000, **conf(user)})
    try:
        p.init_transactions(20)
        p.begin_transaction()
        p.produce(topic, b"in-a-transaction")
        p.commit_transaction(20)
        return "committed"
    except KafkaException as e:
        return e.args[0].code()


def test_producers_idempotent_by_topic_write_and_transactional_by_id(gate):
    """Write on a topic implies IdempotentWrite (Kafka's KIP-679 rule): alice's idempotent
    producer works without a cluster binding, bob (Describe only) is refused. A transaction
    needs Write on its id; with it, AddPartitionsToTxn and EndTxn pass on alice's topics."""
    assert idempotent_produce(gate, "alice", "sec3") == [0, 0]
    assert idempotent_produce(gate, "bob", "sec1") == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert "ACLs deny IdempotentWrite on cluster kafka-cluster to User:bob" in gate.log()
    assert transaction(gate, "alice", "tx-alice", "sec3") == \
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    reply = gate.admin("POST", "/v1/acls", {
        "principal": "User:alice", "permission": "allow", "resource_type": "transactional_id",
        "resource_name": "tx-alice", "operation": "Write"})
    assert reply.status == 201, reply
    assert transaction(gate, "alice", "tx-alice", "sec3") == "committed"
    # a denied topic inside the transaction fails it with the topic's error
    assert transaction(gate, "alice", "tx-alice", "sec1") == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
