"""Every client library of the core matrix through a failover east -> west mid-stream and a
failback: a continuously producing producer and a consumer group member per library (drivers/).
See scenario.py for what is checked after each switch; the switch -> first acknowledged produce
times are printed and summarized at the end of the session, never asserted."""

import os
import re

import pytest

from fohelpers import (INTEGRATION_DIR, ClientRun, advertised_versions)
from scenario import Scenario

PLATFORMATIC_APIS = os.path.join(INTEGRATION_DIR, "node_modules", "@platformatic", "kafka",
                                 "dist", "apis")
# Kafka API keys a producer and a consumer group member use.
CLIENT_API_KEYS = {"ApiVersions": 18, "Metadata": 3, "Produce": 0, "FindCoordinator": 10,
                   "JoinGroup": 11, "SyncGroup": 14, "Heartbeat": 12, "LeaveGroup": 13,
                   "OffsetCommit": 8, "OffsetFetch": 9, "ListOffsets": 2, "Fetch": 1}


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


def unusable(client, advertised):
    out = []
    for name, key in CLIENT_API_KEYS.items():
        c, s = client.get(name), advertised.get(key)
        if c is None or s is None or s[1] < c[0] or s[0] > c[1]:
            out.append(f"{name} (client {c}, advertised {s})")
    return out


def require_platformatic_servable(kgate, clusters):
    """@platformatic/kafka needs Kafka >= 3.5 API versions. When the dev clusters themselves do
    not offer them, the library cannot run here (skip, with the reason); when both clusters offer
    them, kgate must too (fail)."""
    client = platformatic_ranges()
    through_kgate = unusable(client, advertised_versions(kgate.bootstrap("default")))
    if not through_kgate:
        return
    direct = {name: unusable(client, advertised_versions(c.bootstrap))
              for name, c in clusters.items()}
    if any(direct.values()):
        pytest.skip(f"the dev clusters do not implement the API versions @platformatic/kafka "
                    f"requires: {direct}")
    pytest.fail(f"both clusters serve @platformatic/kafka, kgate does not advertise: "
                f"{through_kgate}")


@pytest.mark.guard(200)
@pytest.mark.parametrize("kind", ["kcat", "confluent", "kafka-python", "kafkajs", "platformatic"])
def test_client_failover_and_failback(kind, make_clusters, make_kgate, tmp_path):
    clusters = make_clusters(east="2.12", west="2.12")
    kg = make_kgate(clusters)
    if kind == "platformatic":
        require_platformatic_servable(kg, clusters)
    run = ClientRun(kind, kg.bootstrap("default"), f"fo-{kind}", tmp_path)
    Scenario(kg, clusters, [run], label=f"matrix {kind}").run()


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
