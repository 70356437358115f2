"""Helpers of the failover tests: two dev clusters, a kgate in front of them, direct reads of each
cluster (bypassing kgate), the admin API, and client drivers that produce and consume
continuously while the tests switch sides.

Every client library is driven by a small program in drivers/ that prints one JSON event per line
on stdout:
    {"ev": "sent", "seq": N, "t": T}            before message N is handed to the client library
    {"ev": "ack",  "seq": N, "t": T, "p": P, "o": O}   the library reported it acknowledged
    {"ev": "nack", "seq": N, "t": T, "err": "..."}     the library gave up on it
    {"ev": "recv", "seq": N, "t": T, "p": P, "o": O}   the consumer group member received it
    {"ev": "log",  "msg": "..."}                anything else worth keeping (rebalances, errors)
T is the wall clock (seconds since the epoch) of the driver, on the same machine as the test.
Every message value is "<run id>:<seq>", so a record read from a cluster names its message.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

from kghelpers import (INTEGRATION_DIR, ROOT, VERSION_RE, Proc, free_port_range, wait_for,
                       wait_port_open)

KGATE_BIN = os.environ.get("KGATE_BIN", os.path.join(ROOT, "build", "kgate"))
DEPS = os.path.join(ROOT, "build", "deps")
FAILOVER_DIR = os.path.dirname(os.path.abspath(__file__))
DRIVERS_DIR = os.path.join(FAILOVER_DIR, "drivers")
PYTHON = "/usr/bin/python3"  # Debian's python: it has confluent-kafka and kafka-python
VCLUSTER_PORTS = 33  # bootstrap port + node ids 0..31

# Switch timings measured by the client scenarios, printed at the end of the session.
SWITCH_TIMINGS = []


# ---------------------------------------------------------------------------------------------
# Processes


class Child(Proc):
    """A Proc whose log stays readable after it exited, and that can be SIGKILLed."""

    def stderr_text(self):
        if not self._stderr.closed:
            self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(20)
        if not self._stderr.closed:
            self._stderr.close()
        return self.popen.returncode


def tail(text, n=3000):
    return text[-n:] if text else ""


# ---------------------------------------------------------------------------------------------
# Dev clusters (librdkafka's mock cluster) and direct access to them


def devcluster_argv(version):
    if version == "2.12":
        path = os.path.join(DEPS, "dev-cluster-2.12")
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} missing: run scripts/test-setup")
        return [path]
    if version != "2.0.2":
        raise ValueError(f"unknown dev-cluster version {version}")
    override = os.environ.get("KGATE_DEVCLUSTER_202")
    return override.split() if override else [KGATE_BIN, "dev-cluster"]


class DevCluster:
    """One dev cluster. .bootstrap is its own address list; .topics maps topic -> partitions."""

    def __init__(self, name, version, topics, log_dir, brokers=3):
        self.name = name
        self.version = version
        self.topics = dict(topics)
        argv = devcluster_argv(version) + ["--brokers", str(brokers)]
        for topic, partitions in self.topics.items():
            argv += ["--topic", f"{topic}:{partitions}"]
        self.proc = Child(argv, os.path.join(str(log_dir), f"dev-cluster-{name}.stderr"))
        self.bootstrap = self.proc.read_stdout_line(timeout=20)
        found = VERSION_RE.search(self.proc.stderr_text())
        self.librdkafka_version = found.group(1) if found else None
        self.frozen = False

    def alive(self):
        return self.proc.alive()

    def stop(self):
        if self.frozen:
            self.thaw()
        return self.proc.terminate()

    def freeze(self):
        """A hung region: the process stops answering but its sockets stay open."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    # -- direct reads, bypassing kgate --------------------------------------------------------

    def _consumer(self, group=None):
        from confluent_kafka import Consumer
        return Consumer({"bootstrap.servers": self.bootstrap,
                         "group.id": group or "fo-direct-" + uuid.uuid4().hex[:8],
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True, "broker.address.family": "v4",
                         "socket.timeout.ms": 10000, "log_level": 3})

    def end_offsets(self, topic):
        """{partition: high watermark}, asked from the cluster itself."""
        from confluent_kafka import TopicPartition
        c = self._consumer()
        try:
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15,
                                               cached=False)[1]
                    for p in range(self.topics[topic])}
        finally:
            c.close()

    def committed(self, topic, group):
        """{partition: committed offset of group} on this cluster (-1001: none)."""
        from confluent_kafka import TopicPartition
        c = self._consumer(group)
        try:
            parts = c.committed([TopicPartition(topic, p) for p in range(self.topics[topic])],
                                timeout=15)
            return {tp.partition: tp.offset for tp in parts}
        finally:
            c.close()

    def read_all(self, topic, timeout=30):
        """Every record of topic as (partition, offset, value str)."""
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
        c = self._consumer()
        records, at_end = [], set()
        try:
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                      for p in range(self.topics[topic])])
            deadline = time.monotonic() + timeout
            while len(at_end) < self.topics[topic]:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name}: reading {topic} directly timed out "
                                         f"({len(records)} records, partitions at end {at_end})")
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                        continue
                    raise AssertionError(f"{self.name}: direct read error {m.error()}")
                records.append((m.partition(), m.offset(), (m.value() or b"").decode()))
            return records
        finally:
            c.close()

    def fill(self, topic, per_partition, prefix="filler"):
        """Writes per_partition records to every partition of topic, straight to this cluster."""
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.bootstrap, "broker.address.family": "v4",
                      "linger.ms": 5, "log_level": 3})
        for partition in range(self.topics[topic]):
            for i in range(per_partition):
                p.produce(topic, value=f"{prefix}-{partition}-{i}", partition=partition)
            p.poll(0)
        assert p.flush(30) == 0, f"{self.name}: filling {topic} did not complete"

    def seqs(self, topic, run_id):
        """{seq: [(partition, offset), ...]} of the messages of run run_id stored on this cluster."""
        out = {}
        for p, o, value in self.read_all(topic):
            seq = seq_of(value, run_id)
            if seq is not None:
                out.setdefault(seq, []).append((p, o))
        return out


def seq_of(value, run_id):
    prefix = run_id + ":"
    if not value.startswith(prefix):
        return None
    try:
        return int(value[len(prefix):])
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# kgate


def kgate_config_text(clusters, vclusters, admin_port, state_path, token=None, probe_ms=250,
                      listen="127.0.0.1"):
    """clusters: {name: bootstrap}; vclusters: [(name, port, primary, secondary)]."""
    lines = [f"listen: {listen}", f"advertised_host: {listen}", "clusters:"]
    for name, bootstrap in clusters.items():
        lines.append(f'  {name}: {{ bootstrap: "{bootstrap}" }}')
    lines.append("vclusters:")
    for name, port, primary, secondary in vclusters:
        sec = f", secondary: {secondary}" if secondary else ""
        lines.append(f"  {name}: {{ port: {port}, primary: {primary}{sec} }}")
    admin = f"listen: 127.0.0.1:{admin_port}" + (f", token: {token}" if token else "")
    lines += [f"admin: {{ {admin} }}", f"health: {{ probe_interval_ms: {probe_ms} }}",
              f"state: {state_path}"]
    return "\n".join(lines) + "\n"


class HttpReply:
    def __init__(self, status, body, headers):
        self.status = status
        self.text = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"HTTP {self.status} {self.text[:500]}"


class Kgate:
    """A kgate serving vclusters [(name, primary, secondary)] in front of clusters {name: DevCluster
    or bootstrap string}. The config file, state DB and logs live in work_dir."""

    def __init__(self, clusters, vclusters, work_dir, token=None, probe_ms=250, state_path=None):
        self.work_dir = str(work_dir)
        self.token = token
        self.base = free_port_range(VCLUSTER_PORTS * len(vclusters) + 1)
        self.ports = {name: self.base + i * VCLUSTER_PORTS
                      for i, (name, _, _) in enumerate(vclusters)}
        self.admin_port = self.base + VCLUSTER_PORTS * len(vclusters)
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.state_path = state_path or os.path.join(self.work_dir, "state.db")
        self.config_path = os.path.join(self.work_dir, "kgate.yaml")
        boot = {n: (c.bootstrap if isinstance(c, DevCluster) else c) for n, c in clusters.items()}
        with open(self.config_path, "w") as f:
            f.write(kgate_config_text(boot, [(n, self.ports[n], p, s) for n, p, s in vclusters],
                                      self.admin_port, self.state_path, token, probe_ms))
        self.proc = None
        self.starts = 0

    # -- process ------------------------------------------------------------------------------

    def start(self, wait_ready=True):
        self.starts += 1
        log = os.path.join(self.work_dir, f"kgate-{self.starts}.stderr")
        self.proc = Child([KGATE_BIN, "serve", "-c", self.config_path], log, stdout=None)
        if wait_ready:
            self.wait_serving()
        return self

    def wait_serving(self, timeout=20):
        for port in list(self.ports.values()) + [self.admin_port]:
            if not wait_port_open("127.0.0.1", port, timeout, alive=self.proc.alive):
                rc = self.proc.kill9()
                raise AssertionError(f"kgate did not open port {port} (exit {rc}); stderr:\n"
                                     + tail(self.proc.stderr_text()))

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def stop(self):
        """SIGTERM; returns the exit code (None when it had to be killed)."""
        if self.proc is None:
            return 0
        return self.proc.terminate()

    def kill9(self):
        return self.proc.kill9()

    def log(self):
        return self.proc.stderr_text() if self.proc else ""

    def bootstrap(self, vcluster):
        return f"127.0.0.1:{self.ports[vcluster]}"

    # -- admin API ----------------------------------------------------------------------------

    def http(self, method, path, body=None, token="default", headers=None, timeout=30):
        """One admin API request. body: dict (sent as JSON), str/bytes (sent as is) or None.
        token: "default" = the configured one, None = no Authorization header, or a string."""
        hdrs = dict(headers or {})
        tok = self.token if token == "default" else token
        if tok is not None:
            hdrs["Authorization"] = f"Bearer {tok}"
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return HttpReply(resp.status, resp.read().decode("utf-8", "replace"),
                             dict(resp.getheaders()))
        finally:
            conn.close()

    def status(self):
        r = self.http("GET", "/v1/status")
        assert r.status == 200, r
        return r.json

    def vcluster_status(self, name="default"):
        for vc in self.status()["vclusters"]:
            if vc["name"] == name:
                return vc
        raise AssertionError(f"vcluster {name} missing from /v1/status")

    def cluster_status(self, name):
        for c in self.status()["clusters"]:
            if c["name"] == name:
                return c
        raise AssertionError(f"cluster {name} missing from /v1/status")

    def wait_cluster_up(self, name, up, timeout=30):
        wait_for(lambda: self.cluster_status(name)["up"] == up, timeout, interval=0.1,
                 what=f"kgate to see cluster {name} {'up' if up else 'down'}")

    def switch(self, vcluster, failback=False, to=None, reason="integration test", force=None):
        """POST failover/failback; returns (reply, t_call, t_returned) with wall-clock times."""
        body = {"reason": reason}
        if to is not None:
            body["to"] = to
        if force is not None:
            body["force"] = force
        action = "failback" if failback else "failover"
        t_call = time.time()
        reply = self.http("POST", f"/v1/vclusters/{vcluster}/{action}", body)
        t_ret = time.time()
        return reply, t_call, t_ret

    def audit_entries(self):
        entries, after = [], 0
        while True:
            r = self.http("GET", f"/v1/audit?after={after}&limit=1000")
            assert r.status == 200, r
            if not r.json["entries"]:
                return entries
            entries += r.json["entries"]
            after = r.json["next_after"]

    def metrics(self):
        r = self.http("GET", "/metrics")
        assert r.status == 200, r
        return parse_prometheus(r.text)

    def cli(self, *args, timeout=30, env=None):
        """Runs `kgate ARGS -c CONFIG` and returns the CompletedProcess (text)."""
        argv = [KGATE_BIN] + list(args) + ["-c", self.config_path]
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, env=env)


PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
PROM_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """[(name, {label: value}, float)] of every sample in a Prometheus text exposition."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = PROM_LINE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(PROM_LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric(samples, name, **labels):
    """The value of the one sample of name whose labels include labels."""
    found = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, f"{len(found)} samples of {name}{labels}"
    return found[0]


# ---------------------------------------------------------------------------------------------
# Client drivers


CLIENT_KINDS = ["kcat", "confluent", "kafka-python", "kafkajs", "platformatic"]


def driver_argv(kind, args):
    spec = json.dumps(args)
    scripts = {"kcat": [PYTHON, "kcat_driver.py"], "confluent": [PYTHON, "confluent_driver.py"],
               "kafka-python": [PYTHON, "kafka_python_driver.py"],
               "kafkajs": ["node", "kafkajs_driver.cjs"],
               "platformatic": ["node", "platformatic_driver.mjs"]}
    prog, script = scripts[kind]
    return [prog, os.path.join(DRIVERS_DIR, script), spec]


class ClientRun:
    """A continuously producing producer and a consumer group member of one client library,
    both connected to bootstrap, producing to and consuming from topic."""

    def __init__(self, kind, bootstrap, topic, log_dir, interval_ms=20, producer_config=None,
                 label=None):
        self.kind = label or kind
        self.driver = kind
        self.topic = topic
        self.run_id = f"{self.kind}-{uuid.uuid4().hex[:6]}"
        self.group = f"fo-{self.run_id}"
        self.args = {"bootstrap": bootstrap, "topic": topic, "group": self.group,
                     "run": self.run_id, "interval_ms": interval_ms,
                     "producer_config": producer_config or {}}
        self.stderr_path = os.path.join(str(log_dir), f"driver-{self.kind}.stderr")
        self.lock = threading.Lock()
        self.sent, self.acked, self.recv = {}, {}, {}
        self.nacked, self.logs, self.receipts = [], [], []
        self.popen = None
        self.reader = None

    def start(self):
        if kind_needs_node(self.driver) and not os.path.isdir(
                os.path.join(INTEGRATION_DIR, "node_modules")):
            raise AssertionError("tests/integration/node_modules missing: run scripts/test-setup")
        self._stderr = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(driver_argv(self.driver, self.args), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for raw in self.popen.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                with self.lock:
                    self.logs.append(raw.decode("utf-8", "replace").rstrip())
                continue
            self._on_event(ev)

    def _on_event(self, ev):
        kind = ev.get("ev")
        with self.lock:
            if kind == "sent":
                self.sent.setdefault(ev["seq"], ev["t"])
            elif kind == "ack":
                self.acked.setdefault(ev["seq"], (ev["t"], ev.get("p"), ev.get("o")))
            elif kind == "nack":
                self.nacked.append((ev["seq"], ev["t"], ev.get("err")))
            elif kind == "recv":
                self.recv.setdefault(ev["seq"], ev["t"])
                self.receipts.append((ev["seq"], ev["t"], ev.get("p"), ev.get("o")))
            else:
                self.logs.append(json.dumps(ev))

    def alive(self):
        return self.popen.poll() is None

    def diagnostics(self):
        with self.lock:
            summary = (f"{self.kind}: sent {len(self.sent)}, acked {len(self.acked)}, "
                       f"nacked {len(self.nacked)}, received {len(self.recv)}; "
                       f"driver {'running' if self.alive() else 'exited ' + str(self.popen.returncode)}")
            logs = "\n".join(self.logs[-30:])
            nacks = self.nacked[-5:]
        self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            err = f.read().decode("utf-8", "replace")
        return f"{summary}\nlast nacks: {nacks}\nlog events:\n{logs}\ndriver stderr:\n{tail(err)}"

    # -- views ---------------------------------------------------------------------------------

    def acked_sent_after(self, t):
        """Seqs handed to the library after t and acknowledged."""
        with self.lock:
            return {s for s, st in self.sent.items() if st > t and s in self.acked}

    def sent_after(self, t):
        with self.lock:
            return {s for s, st in self.sent.items() if st > t}

    def ack_times(self):
        with self.lock:
            return dict(self.acked)

    def received(self):
        with self.lock:
            return dict(self.recv)

    def receipts_since(self, t):
        """[(seq, t, partition, offset)] of every record received at or after t."""
        with self.lock:
            return [r for r in self.receipts if r[1] >= t]

    def sent_times(self):
        with self.lock:
            return dict(self.sent)

    def logs_matching(self, text):
        with self.lock:
            return [l for l in self.logs if text in l]

    def nacks_between(self, t0, t1):
        with self.lock:
            return [n for n in self.nacked if t0 <= n[1] <= t1]

    def stop(self, timeout=20):
        if self.popen is None:
            return
        if self.popen.poll() is None:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.reader.join(5)
        self._stderr.close()


def kind_needs_node(kind):
    return kind in ("kafkajs", "platformatic")


# ---------------------------------------------------------------------------------------------
# ApiVersions as advertised (for clients that need recent API versions)


def advertised_versions(bootstrap):
    """{api key: (min, max)} from an ApiVersions v0 exchange with bootstrap."""
    from kghelpers import api_versions_v0, parse_api_versions_v0, round_trip
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.settimeout(10)
        error, apis = parse_api_versions_v0(round_trip(s, api_versions_v0(1)))
    assert error == 0, f"ApiVersions v0 error {error} from {bootstrap}"
    return apis


def print_flush(*args):
    print(*args)
    sys.stdout.flush()
