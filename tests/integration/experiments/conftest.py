"""Fixtures for the experiment tests (issue 4, "Experiments"): a dev cluster, and kgate in front
of it with the admin API at hand (the chaos tests' ChaosGate, reused from chaos/conftest.py).

Experiments need kgate, so with KGATE_TEST_DIRECT=1 every test here is skipped.

kgate runs from a private copy of the binary under test: other work in the same tree may
rebuild build/kgate while these tests run, and an experiment test keeps kgate up for a while.

KGATE_EXPERIMENT_CLUSTERS (default "2.0.2") chooses the dev cluster builds, comma-separated.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import time

import pytest

from kghelpers import INTEGRATION_DIR, Proc, parse_hostports

EXPERIMENTS_DIR = os.path.dirname(os.path.abspath(__file__))
CHAOS_DIR = os.path.join(INTEGRATION_DIR, "chaos")
# chaoslib (the chaos tests' client helpers) is imported by name from the test files.
if CHAOS_DIR not in sys.path:
    sys.path.insert(0, CHAOS_DIR)
if EXPERIMENTS_DIR not in sys.path:
    sys.path.insert(0, EXPERIMENTS_DIR)


def _load(path, name):
    """The module at PATH as pytest loaded it, or else a fresh instance under NAME (every
    conftest module is called "conftest", so it cannot simply be imported)."""
    for mod in list(sys.modules.values()):
        if os.path.abspath(getattr(mod, "__file__", "") or "") == path:
            return mod
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load_fresh(path, name):
    """A private instance of the module at PATH: its globals (the kgate binary) can be changed
    without touching the instance the chaos tests use in the same session."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _chaos_gate_module():
    """Where the chaos tests keep ChaosGate: chaos/chaosgate.py, or (before that module
    existed) chaos/conftest.py."""
    for name in ("chaosgate.py", "conftest.py"):
        path = os.path.join(CHAOS_DIR, name)
        if os.path.exists(path):
            mod = _load_fresh(path, "kgate_experiments_" + name[:-3])
            if hasattr(mod, "ChaosGate"):
                return mod
    raise ImportError(f"no ChaosGate in {CHAOS_DIR}")


_base = _load(os.path.join(INTEGRATION_DIR, "conftest.py"), "kgate_integration_conftest")
_chaos = _chaos_gate_module()
DIRECT = _base.DIRECT
ChaosGate = _chaos.ChaosGate

CLUSTER_VERSIONS = [v.strip() for v in
                    os.environ.get("KGATE_EXPERIMENT_CLUSTERS", "2.0.2").split(",") if v.strip()]
# Each test has its own dev cluster; the names only need to be distinct inside one test.
EXPERIMENT_TOPICS = ["app3:3", "probe1:1", "side3:3", "other3:3"]


@pytest.fixture(autouse=True)
def _experiments_need_kgate():
    if DIRECT:
        pytest.skip("experiments are run by kgate (KGATE_TEST_DIRECT=1)")


@pytest.fixture(scope="session")
def kgate_bin(tmp_path_factory):
    """A private copy of the kgate under test, used for kgate, its CLI and the 2.0.2 dev
    cluster."""
    source = _base.KGATE_BIN
    deadline = time.monotonic() + 120
    while True:
        try:
            if subprocess.run([source, "version"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=10).returncode == 0:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{source} is not a working kgate binary (make build)")
        time.sleep(1)
    copy = os.path.join(str(tmp_path_factory.mktemp("expbin")), "kgate")
    shutil.copy2(source, copy)
    # ChaosGate starts `KGATE_BIN serve` from its module's globals: this private instance's.
    _chaos.KGATE_BIN = copy
    return copy


class Cluster:
    """A dev cluster (librdkafka's mock cluster): .bootstrap "host:port,..."."""

    def __init__(self, version, kgate_bin, tmp_path, topics=EXPERIMENT_TOPICS):
        argv = (_base.devcluster_argv(version) if version != "2.0.2"
                else [kgate_bin, "dev-cluster"]) + ["--brokers", "3"]
        for t in topics:
            argv += ["--topic", t]
        self.proc = Proc(argv, os.path.join(str(tmp_path), "dev-cluster.stderr"))
        self.bootstrap = self.proc.read_stdout_line(timeout=20)
        self.hostports = parse_hostports(self.bootstrap)

    def stop(self):
        rc = self.proc.terminate()
        assert rc == 0, f"dev-cluster exit code {rc}; stderr:\n{self.proc.stderr_text()[-3000:]}"


@pytest.fixture(params=CLUSTER_VERSIONS, ids=lambda v: f"rdk{v}")
def cluster(request, kgate_bin, tmp_path):
    dc = Cluster(request.param, kgate_bin, tmp_path)
    try:
        yield dc
    finally:
        dc.stop()


@pytest.fixture
def gate_factory(cluster, kgate_bin, tmp_path):
    """gate_factory(vclusters=("default",), ...) -> a ChaosGate (kgate with the admin API);
    stopped at teardown, exit code 0 asserted."""
    started = []

    def start(**kwargs):
        sub = tmp_path / f"gate{len(started)}"
        sub.mkdir()
        g = ChaosGate(cluster, sub, **kwargs)
        g.kgate_bin = kgate_bin
        started.append(g)
        return g

    yield start
    errors = []
    for g in started:
        try:
            g.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


@pytest.fixture
def gate(gate_factory):
    return gate_factory()
