"""Fixtures for kgate's integration tests.

Every client test runs against two embedded Kafka clusters (librdkafka's mock cluster):
  - "2.0.2": Debian's librdkafka, started as `$KGATE_BIN dev-cluster`
  - "2.12":  build/deps/dev-cluster-2.12 (librdkafka 2.12 from node-rdkafka's tarball, built by
             scripts/test-setup), a modern-protocol broker (Produce v10, Fetch v16, ...)
and, unless KGATE_TEST_DIRECT=1, through a kgate (`$KGATE_BIN serve -c FILE`) in front of it.

KGATE_TEST_DIRECT=1 points the clients straight at the dev cluster: it validates the tests
themselves (kgate-only tests skip; the address scan then has to find backend addresses).
"""

import os
import resource
import signal
import sys

import pytest

from kghelpers import (DIRECT, KGATE_BIN, KGATE_PORTS, VERSION_RE, Proc, devcluster_command,
                       free_port_range, parse_hostports, wait_port_open)

CLUSTER_VERSIONS = ["2.0.2", "2.12"]
# Enough topics for every test to use its own, so tests sharing a cluster never interfere.
DEFAULT_TOPICS = ["t6:6", "t3:3", "t1:1", "kcat6:6", "idem6:6", "grp6:6", "txn3:3",
                  "kpy3:3", "kjs3:3", "pfk3:3", "addr3:3", "bad3:3", "vec3:3"]
DEFAULT_GUARD_SECONDS = 240


def pytest_configure(config):
    config.addinivalue_line("markers", "guard(seconds): abort the test after this long")
    config.addinivalue_line("markers", "kgate_only: needs kgate, skipped with KGATE_TEST_DIRECT=1")


def _raise_nofile_limit():
    """1,000 client connections through kgate cost ~2,000 descriptors in kgate and 1,000 here and
    in the dev cluster; children inherit this limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


_raise_nofile_limit()


# ---------------------------------------------------------------------------------------------
# Per-test guard (pytest-timeout is not available): SIGALRM raises in the test's main thread.


@pytest.fixture(autouse=True)
def guard(request):
    marker = request.node.get_closest_marker("guard")
    seconds = int(marker.args[0]) if marker else DEFAULT_GUARD_SECONDS

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded its {seconds}s guard")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _skip_kgate_only_in_direct_mode(request):
    if DIRECT and request.node.get_closest_marker("kgate_only"):
        pytest.skip("needs kgate (KGATE_TEST_DIRECT=1)")


# ---------------------------------------------------------------------------------------------
# Dev clusters


def devcluster_argv(version):
    try:
        return devcluster_command(version)
    except FileNotFoundError as e:
        pytest.fail(str(e))


class DevCluster:
    """A running dev cluster: .bootstrap "host:port,...", .version "X.Y.Z", .brokers."""

    def __init__(self, version, tmp_path, brokers=3, topics=DEFAULT_TOPICS, name="east"):
        self.name = name
        self.requested_version = version
        self.brokers = brokers
        argv = devcluster_argv(version) + ["--brokers", str(brokers)]
        for t in topics:
            argv += ["--topic", t]
        self.proc = Proc(argv, os.path.join(str(tmp_path), f"dev-cluster-{name}.stderr"))
        self.pid = self.proc.pid
        self.bootstrap = self.proc.read_stdout_line(timeout=20)
        self.hostports = parse_hostports(self.bootstrap)
        found = VERSION_RE.search(self.proc.stderr_text())
        self.version = found.group(1) if found else None

    def assert_version(self):
        assert self.version, "dev-cluster logged no librdkafka version:\n" + self.proc.stderr_text()
        if self.requested_version == "2.0.2":
            assert self.version == "2.0.2", f"Debian's build reports librdkafka {self.version}"
        else:
            assert self.version.startswith(self.requested_version + "."), \
                f"the {self.requested_version} build reports librdkafka {self.version}"

    def stop(self):
        rc = self.proc.terminate()
        assert rc == 0, f"dev-cluster exit code {rc}; stderr:\n{self.proc.stderr_text()[-3000:]}"


@pytest.fixture(params=CLUSTER_VERSIONS, ids=lambda v: f"rdk{v}")
def dev_cluster(request, tmp_path):
    dc = DevCluster(request.param, tmp_path)
    try:
        dc.assert_version()
        assert len(dc.hostports) == 3, dc.bootstrap
        yield dc
    finally:
        dc.stop()


# ---------------------------------------------------------------------------------------------
# kgate


def kgate_config_yaml(base, admin_port, clusters, state_path, advertised_host="127.0.0.1",
                      listen="127.0.0.1", vcluster="default", primary="east", secondary=None,
                      extra=""):
    lines = [f"listen: {listen}", f"advertised_host: {advertised_host}", "clusters:"]
    for name, bootstrap in clusters.items():
        lines.append(f'  {name}: {{ bootstrap: "{bootstrap}" }}')
    vc = f"port: {base}, primary: {primary}" + (f", secondary: {secondary}" if secondary else "")
    lines += ["vclusters:", f"  {vcluster}: {{ {vc} }}",
              f"admin: {{ listen: 127.0.0.1:{admin_port} }}", f"state: {state_path}"]
    return "\n".join(lines) + "\n" + extra


class Gateway:
    """What clients connect to: kgate in front of the dev cluster, or (direct mode) the dev
    cluster itself.

    .bootstrap         address clients bootstrap from
    .broker_address(n) the address clients must see for node id n
    .pid               the process whose resources the leak test watches
    """

    def __init__(self, dev_cluster, tmp_path, advertised_host="127.0.0.1", direct=DIRECT,
                 extra_config=""):
        self.backend = dev_cluster
        self.direct = direct
        self.advertised_host = advertised_host
        self.proc = None
        if direct:
            self.bootstrap = dev_cluster.bootstrap.split(",")[0]
            self.pid = dev_cluster.pid
            self.base = None
            return
        if not os.access(KGATE_BIN, os.X_OK):
            pytest.fail(f"{KGATE_BIN} missing: build kgate or run with KGATE_TEST_DIRECT=1")
        hosts = ("127.0.0.1",) if advertised_host == "127.0.0.1" else ("127.0.0.1", advertised_host)
        self.base = free_port_range(KGATE_PORTS + 1, hosts)
        self.admin_port = self.base + KGATE_PORTS
        self.config_path = os.path.join(str(tmp_path), "kgate.yaml")
        with open(self.config_path, "w") as f:
            f.write(kgate_config_yaml(
                self.base, self.admin_port, {"east": dev_cluster.bootstrap},
                os.path.join(str(tmp_path), "kgate-state.db"), advertised_host=advertised_host,
                extra=extra_config))
        self.proc = Proc([KGATE_BIN, "serve", "-c", self.config_path],
                         os.path.join(str(tmp_path), "kgate.stderr"), stdout=None)
        self.pid = self.proc.pid
        self.bootstrap = f"127.0.0.1:{self.base}"
        if not wait_port_open("127.0.0.1", self.base, 20, alive=self.proc.alive):
            rc = self.proc.terminate()
            pytest.fail(f"kgate did not open 127.0.0.1:{self.base} (exit {rc}); stderr:\n"
                        + self.proc.stderr_text()[-4000:])

    def broker_address(self, node_id):
        if self.direct:
            return dict(self._direct_brokers())[node_id]
        return f"{self.advertised_host}:{self.base + 1 + node_id}"

    def _direct_brokers(self):
        # The mock cluster numbers its brokers 1..N in bootstrap-list order.
        return [(i + 1, hp) for i, hp in enumerate(self.backend.bootstrap.split(","))]

    def stderr_text(self):
        return self.proc.stderr_text() if self.proc else ""

    def stop(self):
        if not self.proc:
            return
        rc = self.proc.terminate()
        text = self.proc.stderr_text()
        print(f"---- kgate stderr (last 6000 chars), exit code {rc} ----\n{text[-6000:]}")
        assert rc == 0, f"kgate exited with {rc} after SIGTERM"


@pytest.fixture
def kgate_factory(dev_cluster, tmp_path):
    """Starts a kgate for the dev cluster with custom options; stopped (exit 0 asserted) at
    teardown."""
    started = []

    def start(**kwargs):
        sub = tmp_path / f"kgate{len(started)}"
        sub.mkdir()
        gw = Gateway(dev_cluster, sub, **kwargs)
        started.append(gw)
        return gw

    yield start
    errors = []
    for gw in started:
        try:
            gw.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


@pytest.fixture
def kgate(kgate_factory):
    return kgate_factory()


def pytest_report_header(config):
    mode = "DIRECT (no kgate)" if DIRECT else f"through kgate {KGATE_BIN}"
    return f"kgate integration: clients connect {mode}"


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
