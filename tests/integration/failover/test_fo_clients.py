"""Every client library of the core matrix through a failover east -> west mid-stream and a
failback: a continuously producing producer and a consumer group member per library (drivers/),
the same client instances (for kcat: the same two kcat processes) for the whole run. Each client
runs against both backends, two librdkafka 2.0.2 mock clusters and two 2.12 ones.
See scenario.py for what is checked after each switch; the switch -> first acknowledged produce
times are printed and summarized at the end of the session, never asserted.

@platformatic/kafka needs Kafka >= 3.5 API versions; whether a backend serves them is decided by
asking the mock cluster itself (ApiVersions straight to its first broker, never through kgate):
when it does not, the test skips and names each API it lacks (client versions vs the mock's)."""

import os
import re

import pytest

from fohelpers import INTEGRATION_DIR, ClientRun, advertised_versions
from scenario import Scenario

BACKENDS = ["2.0.2", "2.12"]
PLATFORMATIC_APIS = os.path.join(INTEGRATION_DIR, "node_modules", "@platformatic", "kafka",
                                 "dist", "apis")
# Kafka API keys the @platformatic/kafka driver uses, by role. ApiVersions is left out: kgate
# answers it itself (it never reaches a cluster), so the mock's own ApiVersions range is moot.
PRODUCER_API_KEYS = {"Metadata": 3, "Produce": 0}  # not idempotent by default: no InitProducerId
CONSUMER_API_KEYS = {"Metadata": 3, "FindCoordinator": 10, "JoinGroup": 11, "SyncGroup": 14,
                     "Heartbeat": 12, "LeaveGroup": 13, "OffsetCommit": 8, "OffsetFetch": 9,
                     "ListOffsets": 2, "Fetch": 1}


def platformatic_ranges():
    """{api name: (min, max)} @platformatic/kafka implements (dist/apis/<area>/<api>-v<N>.js);
    it never falls back below these."""
    ranges = {}
    for area in os.listdir(PLATFORMATIC_APIS):
        path = os.path.join(PLATFORMATIC_APIS, area)
        for fn in os.listdir(path) if os.path.isdir(path) else []:
            m = re.fullmatch(r"([a-z-]+)-v(\d+)\.js", fn)
            if m:
                name = "".join(w.capitalize() for w in m.group(1).split("-"))
                v = int(m.group(2))
                lo, hi = ranges.get(name, (v, v))
                ranges[name] = (min(lo, v), max(hi, v))
    return ranges


def backend_lacks(cluster, keys):
    """The APIs of keys ({name: api key}) @platformatic/kafka cannot use on cluster, asked from
    the mock cluster itself: ["Name: client vA-B, mock vC-D", ...]."""
    client = platformatic_ranges()
    served = advertised_versions(cluster.bootstrap)  # straight to the dev cluster
    out = []
    for name, key in keys.items():
        c, s = client.get(name), served.get(key)
        assert c is not None, f"@platformatic/kafka ships no {name} codec: update the table"
        if s is None:
            out.append(f"{name}: client v{c[0]}-{c[1]}, the mock does not serve it")
        elif s[1] < c[0] or s[0] > c[1]:
            out.append(f"{name}: client v{c[0]}-{c[1]}, mock v{s[0]}-{s[1]}")
    return out


def skip_unless_backends_serve(clusters, keys, what):
    lacks = {name: backend_lacks(c, keys) for name, c in clusters.items()}
    if any(lacks.values()):
        version = {c.version for c in clusters.values()}
        pytest.skip(f"librdkafka {'/'.join(sorted(version))} mock cluster lacks what "
                    f"@platformatic/kafka's {what} needs: "
                    + "; ".join(sorted({x for v in lacks.values() for x in v})))


@pytest.mark.guard(200)
@pytest.mark.parametrize("kind", ["kcat", "confluent", "kafka-python", "kafkajs", "platformatic"])
@pytest.mark.parametrize("backend", BACKENDS, ids=[f"rdk{b}" for b in BACKENDS])
def test_client_failover_and_failback(backend, kind, make_clusters, make_kgate, tmp_path):
    clusters = make_clusters(east=backend, west=backend)
    for c in clusters.values():
        assert c.librdkafka_version and c.librdkafka_version.startswith(backend), \
            (c.name, backend, c.librdkafka_version)
    if kind == "platformatic":
        skip_unless_backends_serve(clusters, {**PRODUCER_API_KEYS, **CONSUMER_API_KEYS},
                                   "producer and consumer group")
    kg = make_kgate(clusters)
    run = ClientRun(kind, kg.bootstrap("default"), f"fo-{kind}", tmp_path)
    Scenario(kg, clusters, [run], label=f"{backend} {kind}").run()


@pytest.mark.guard(200)
@pytest.mark.parametrize("backend", BACKENDS, ids=[f"rdk{b}" for b in BACKENDS])
def test_platformatic_producer_failover_and_failback(backend, make_clusters, make_kgate,
                                                     tmp_path):
    """@platformatic/kafka's producer alone (no consumer group) through a failover and a
    failback, wherever the backend serves the producer's API versions."""
    clusters = make_clusters(east=backend, west=backend)
    skip_unless_backends_serve(clusters, PRODUCER_API_KEYS, "producer")
    kg = make_kgate(clusters)
    run = ClientRun("platformatic", kg.bootstrap("default"), "fo-platformatic", tmp_path,
                    consume=False, label="platformatic-producer")
    Scenario(kg, clusters, [run], label=f"{backend} platformatic producer").run()


@pytest.mark.guard(200)
def test_idempotent_librdkafka_producer_failover_and_failback(make_clusters, make_kgate, tmp_path):
    """Producer ids are per cluster: after a switch the idempotent producer's id is unknown to the
    new side. librdkafka must get a new one and keep producing, without losing acknowledged
    messages. (KafkaJS's idempotent producer cannot start on the mock cluster at all: the mock
    names controller 0, a broker that does not exist.)"""
    clusters = make_clusters()
    kg = make_kgate(clusters)
    run = ClientRun("confluent", kg.bootstrap("default"), "fo-confluent", tmp_path,
                    producer_config={"enable.idempotence": True}, label="confluent-idem")
    Scenario(kg, clusters, [run], label="idempotent confluent").run()
