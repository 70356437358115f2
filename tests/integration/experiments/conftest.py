"""Fixtures for the experiment tests (issue 4, "Experiments"): a dev cluster, and kgate in front
of it with the admin API at hand (the chaos tests' ChaosGate and gate fixtures, from
chaos/chaosgate.py).

Experiments need kgate, so with KGATE_TEST_DIRECT=1 every test here is skipped.

kgate runs from the session's private copy of the binary under test (conftest.py): other work in
the same tree may rebuild build/kgate while these tests run, and an experiment test keeps kgate
up for a while.

KGATE_EXPERIMENT_CLUSTERS (default "2.0.2") chooses the dev cluster builds, comma-separated.
"""

import os
import sys

import pytest

from kghelpers import DIRECT, INTEGRATION_DIR, DevCluster

EXPERIMENTS_DIR = os.path.dirname(os.path.abspath(__file__))
CHAOS_DIR = os.path.join(INTEGRATION_DIR, "chaos")
# chaosgate (ChaosGate and the gate fixtures) and chaoslib (the chaos tests' client helpers)
# are imported by name, here and from the test files.
if CHAOS_DIR not in sys.path:
    sys.path.insert(0, CHAOS_DIR)
if EXPERIMENTS_DIR not in sys.path:
    sys.path.insert(0, EXPERIMENTS_DIR)

from chaosgate import gate, gate_factory  # noqa: E402,F401 (fixtures)

CLUSTER_VERSIONS = [v.strip() for v in
                    os.environ.get("KGATE_EXPERIMENT_CLUSTERS", "2.0.2").split(",") if v.strip()]
# Each test has its own dev cluster; the names only need to be distinct inside one test.
EXPERIMENT_TOPICS = ["app3:3", "probe1:1", "side3:3", "other3:3"]


@pytest.fixture(autouse=True)
def _experiments_need_kgate():
    if DIRECT:
        pytest.skip("experiments are run by kgate (KGATE_TEST_DIRECT=1)")


@pytest.fixture(scope="session", autouse=True)
def _private_kgate(private_kgate):
    """kgate, its CLI and the 2.0.2 dev cluster run the session's private copy (conftest.py)."""
    return private_kgate


@pytest.fixture(params=CLUSTER_VERSIONS, ids=lambda v: f"rdk{v}")
def cluster(request, tmp_path):
    dc = DevCluster(request.param, tmp_path, EXPERIMENT_TOPICS)
    try:
        yield dc
    finally:
        dc.stop()
