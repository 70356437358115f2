"""The two clusters of a virtual cluster on different librdkafka mock versions (2.12, a modern
protocol: Produce v10, Fetch v16, ...; 2.0.2, an older one), in both placements, failing over and
back (so both directions 2.12 -> 2.0.2 and 2.0.2 -> 2.12 are crossed) with a librdkafka client
(confluent-kafka-python) and kcat producing and consuming at the same time."""

import pytest

from fohelpers import ClientRun, advertised_versions
from scenario import Scenario


APIVERSIONS = 18


def assert_versions_are_the_intersection(kg, clusters):
    """kgate may only advertise versions both clusters serve: a client that negotiated on one
    side must be served by the other after a switch."""
    gateway = advertised_versions(kg.bootstrap("default"))
    sides = {name: advertised_versions(c.bootstrap) for name, c in clusters.items()}
    problems = []
    for key, (lo, hi) in gateway.items():
        if key == APIVERSIONS:
            continue  # answered by kgate itself, whatever the cluster behind it
        for name, apis in sides.items():
            if key not in apis:
                problems.append(f"api {key}: advertised, {name} does not serve it")
            elif lo < apis[key][0] or hi > apis[key][1]:
                problems.append(f"api {key}: advertised {lo}-{hi}, {name} serves {apis[key]}")
    assert not problems, problems
    # The APIs a producer and a consumer group need are all there.
    for key in (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18):
        assert key in gateway, f"api {key} missing from kgate's ApiVersions: {gateway}"


@pytest.mark.guard(200)
@pytest.mark.parametrize("east,west", [("2.12", "2.0.2"), ("2.0.2", "2.12")],
                         ids=["east2.12-west2.0.2", "east2.0.2-west2.12"])
def test_mixed_versions_failover_and_failback(east, west, make_clusters, make_kgate, tmp_path):
    clusters = make_clusters(east=east, west=west)
    for c in clusters.values():
        assert c.librdkafka_version and c.librdkafka_version.startswith(c.version), \
            (c.name, c.version, c.librdkafka_version)
    kg = make_kgate(clusters)
    assert_versions_are_the_intersection(kg, clusters)
    runs = [ClientRun(kind, kg.bootstrap("default"), f"fo-{kind}", tmp_path)
            for kind in ("confluent", "kcat")]
    Scenario(kg, clusters, runs, label=f"east {east} / west {west}").run()
