import pytest
from fohelpers import ClientRun
from scenario import Scenario

@pytest.mark.guard(200)
def test_idem(make_clusters, make_kgate, tmp_path):
    clusters = make_clusters()
    kg = make_kgate(clusters)
    run = ClientRun("confluent", kg.bootstrap("default"), "fo-confluent", tmp_path,
                    producer_config={"enable.idempotence": True}, label="confluent-idempotent")
    Scenario(kg, clusters, [run], label="idempotent", wait_seconds=40).run()
