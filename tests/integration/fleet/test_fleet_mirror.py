"""The embedded mirror is not run by a fleet (a PostgreSQL state shared by instances): each
instance would copy every record. kgate says so and copies nothing; the mirror's own test
(tests/integration/failover/test_fo_mirror.py) shows what one instance does."""

import pytest

from fohelpers import metric, wait_for


@pytest.mark.guard(180)
def test_a_fleet_does_not_run_the_mirror(make_clusters, make_kgate, pg_url):
    clusters = make_clusters(topics={"fo-mir": 1})
    kg = make_kgate(clusters, start=False, state_path=pg_url)
    kg.add_vcluster_keys('mirror: { topics: "^fo-mir$", interval_ms: 100 }')
    kg.start()
    wait_for(lambda: "mirror: not run with a shared PostgreSQL state" in kg.log(), 30,
             what="kgate's warning that the fleet does not run the mirror")
    assert metric(kg.metrics(), "kgate_mirror_records_total", vcluster="default") == 0
