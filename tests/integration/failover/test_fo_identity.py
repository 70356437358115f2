"""A virtual cluster keeps one identity across a switch (issue 10, item 1): clients read the
same cluster id from kgate before and after a failover, although the two clusters behind it
have different ids, and librdkafka never sees a "different ClusterId" while connected through
kgate. Checked with librdkafka 2.0.2 (confluent-kafka) and kafka-python."""

import logging

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient

from fohelpers import wait_for


def librdkafka_cluster_id(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15).cluster_id


def kafka_python_cluster_id(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        return admin.describe_cluster()["cluster_id"]
    finally:
        admin.close()


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.guard(120)
def test_cluster_id_survives_a_failover(make_clusters, make_kgate):
    clusters = make_clusters(east="2.0.2", west="2.12")
    kg = make_kgate(clusters)
    vc_id = kg.vcluster_status("default")["cluster_id"]
    wait_for(lambda: all(c.get("cluster_id") for c in kg.status()["clusters"]), 20,
             what="both clusters probed")
    physical = {c["name"]: c["cluster_id"] for c in kg.status()["clusters"]}
    assert physical["east"] != physical["west"]
    assert vc_id not in physical.values() and len(vc_id) == 22

    bootstrap = f"127.0.0.1:{kg.ports['default']}"
    log = logging.getLogger("librdkafka-identity")
    captured = Captured()
    log.addHandler(captured)
    producer = Producer({"bootstrap.servers": bootstrap, "logger": log,
                         "topic.metadata.refresh.interval.ms": 500})
    delivered = []
    producer.produce("fo-confluent", b"before", on_delivery=lambda e, m: delivered.append(e))
    producer.flush(15)
    assert librdkafka_cluster_id(bootstrap) == vc_id
    assert kafka_python_cluster_id(bootstrap) == vc_id

    reply, _, _ = kg.switch("default", to="west", reason="identity test")
    assert reply.status == 200, reply
    producer.produce("fo-confluent", b"after", on_delivery=lambda e, m: delivered.append(e))
    producer.flush(30)
    producer.poll(1.5)  # a metadata refresh or two against the new side
    assert delivered == [None, None]
    assert librdkafka_cluster_id(bootstrap) == vc_id
    assert kafka_python_cluster_id(bootstrap) == vc_id
    assert not [line for line in captured.lines if "ClusterId" in line], captured.lines
