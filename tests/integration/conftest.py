"""Fixtures for kgate's integration tests.

Every client test runs against two embedded Kafka clusters (librdkafka's mock cluster):
  - "2.0.2": Debian's librdkafka, started as `$KGATE_BIN dev-cluster`
  - "2.12":  build/deps/dev-cluster-2.12 (librdkafka 2.12 from node-rdkafka's tarball, built by
             scripts/test-setup), a modern-protocol broker (Produce v10, Fetch v16, ...)
and, unless KGATE_TEST_DIRECT=1, through a kgate (`$KGATE_BIN serve -c FILE`) in front of it.

KGATE_TEST_DIRECT=1 points the clients straight at the dev cluster: it validates the tests
themselves (kgate-only tests skip; the address scan then has to find backend addresses).
"""

import fnmatch
import os
import resource
import signal
import sys

import pytest

import kghelpers
from kghelpers import (DIRECT, KGATE_BIN, factory_in_subdirs, kgate_config_yaml, kgate_ports,
                       start_kgate, stop_kgate)

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
# The private kgate copy of the failover, chaos and experiment suites


@pytest.fixture(scope="session")
def private_kgate(tmp_path_factory):
    """One private copy of the kgate under test for the session (kghelpers.use_private_kgate);
    None with KGATE_TEST_DIRECT=1, where every test that runs kgate is skipped."""
    if DIRECT:
        return None
    return kghelpers.use_private_kgate(tmp_path_factory.mktemp("bin"))


# ---------------------------------------------------------------------------------------------
# Dev clusters


class DevCluster(kghelpers.DevCluster):
    """A dev cluster whose .version is the librdkafka version it reports."""

    def __init__(self, version, tmp_path, brokers=3, topics=DEFAULT_TOPICS, name="east"):
        try:
            super().__init__(version, tmp_path, topics, brokers=brokers, name=name)
        except FileNotFoundError as e:
            pytest.fail(str(e))
        self.version = self.librdkafka_version

    def assert_version(self):
        assert self.version, "dev-cluster logged no librdkafka version:\n" + self.proc.stderr_text()
        if self.requested_version == "2.0.2":
            assert self.version == "2.0.2", f"Debian's build reports librdkafka {self.version}"
        else:
            assert self.version.startswith(self.requested_version + "."), \
                f"the {self.requested_version} build reports librdkafka {self.version}"


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
        ports, self.admin_port = kgate_ports(["default"], hosts)
        self.base = ports["default"]
        self.config_path = os.path.join(str(tmp_path), "kgate.yaml")
        with open(self.config_path, "w") as f:
            f.write(kgate_config_yaml(
                {"east": dev_cluster.bootstrap}, [("default", self.base, "east", None)],
                self.admin_port, os.path.join(str(tmp_path), "kgate-state.db"),
                advertised_host=advertised_host) + extra_config)
        self.proc = start_kgate(KGATE_BIN, self.config_path,
                                os.path.join(str(tmp_path), "kgate.stderr"), [self.base])
        self.pid = self.proc.pid
        self.bootstrap = f"127.0.0.1:{self.base}"

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
        if self.proc:
            stop_kgate(self.proc)


@pytest.fixture
def kgate_factory(dev_cluster, tmp_path):
    """Starts a kgate for the dev cluster with custom options; stopped (exit 0 asserted) at
    teardown."""
    yield from factory_in_subdirs(tmp_path, "kgate",
                                  lambda sub, **kwargs: Gateway(dev_cluster, sub, **kwargs))


@pytest.fixture
def kgate(kgate_factory):
    return kgate_factory()


def pytest_report_header(config):
    mode = "DIRECT (no kgate)" if DIRECT else f"through kgate {KGATE_BIN}"
    return f"kgate integration: clients connect {mode}"


# ---------------------------------------------------------------------------------------------
# The skip budget: every skip and expected failure must be one allowed-skips.txt lists, with the
# external limitation it names; anything else fails the run, so a regression cannot hide as a skip.

ALLOWED_SKIPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "allowed-skips.txt")
_not_run = []  # (nodeid, "skip" | "xfail" | "xpass", reason)
_budget_violations = []


def load_allowed_skips(path=ALLOWED_SKIPS):
    """[(max count, test id pattern, reason substring)] from `count | pattern | reason` lines."""
    allowed = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split("|", 2)]
            if len(parts) != 3 or not parts[0].isdigit() or not parts[2]:
                raise ValueError(f"{path}:{n}: expected 'count | test id pattern | reason'")
            allowed.append((int(parts[0]), parts[1], parts[2]))
    return allowed


def _id_matches(nodeid, pattern):
    """`*` is the only wildcard: the brackets of parametrized ids ("[rdk2.12]") are literal."""
    return fnmatch.fnmatchcase(nodeid, pattern.replace("[", "[[]").replace("?", "[?]"))


def skip_budget_violations(not_run, allowed):
    """What in `not_run` the budget does not allow: unlisted skips, and lines used too often."""
    used = [0] * len(allowed)
    problems = []
    for nodeid, kind, reason in not_run:
        if kind == "xpass":
            problems.append(f"{nodeid}: expected to fail but passed ({reason})")
            continue
        for i, (_, pattern, text) in enumerate(allowed):
            if _id_matches(nodeid, pattern) and text in reason:
                used[i] += 1
                break
        else:
            problems.append(f"{nodeid}: {kind} not in {os.path.basename(ALLOWED_SKIPS)}: {reason}")
    for (limit, pattern, text), count in zip(allowed, used):
        if count > limit:
            problems.append(f"{count} x '{pattern} | {text}': only {limit} allowed")
    return problems


def _skip_reason(report):
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def pytest_runtest_logreport(report):
    if hasattr(report, "wasxfail"):
        kind = "xfail" if report.skipped else "xpass"
        _not_run.append((report.nodeid, kind, report.wasxfail))
    elif report.skipped:
        _not_run.append((report.nodeid, "skip", _skip_reason(report)))


def pytest_sessionfinish(session, exitstatus):
    if DIRECT:
        return  # kgate-only tests skip by design there; the budget is for runs through kgate
    _budget_violations.extend(skip_budget_violations(_not_run, load_allowed_skips()))
    if _budget_violations and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    terminalreporter.section("skips and expected failures")
    for nodeid, kind, reason in _not_run:
        write(f"{kind:5}  {nodeid}: {reason}")
    write(f"{len(_not_run)} not run as tests through kgate"
          if DIRECT else f"{len(_not_run)} in all, budget: {os.path.relpath(ALLOWED_SKIPS)}")
    for problem in _budget_violations:
        write(f"SKIP BUDGET: {problem}", red=True)
    if DIRECT:
        write("DIRECT MODE: the clients talked straight to the dev clusters and kgate was not "
              "tested. This run validates the tests only and does not count as `make test`.",
              yellow=True)


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
