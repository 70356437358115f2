"""Helpers of the failover tests: two dev clusters, a kgate in front of them, direct reads of each
cluster (bypassing kgate), the admin API, and client drivers that produce and consume
continuously while the tests switch sides.

Every client library is driven by a small program in drivers/ that prints one JSON event per line
on stdout:
    {"ev": "sent", "seq": N, "t": T}            before message N is handed to the client library
    {"ev": "ack",  "seq": N, "t": T, "p": P, "o": O}   the library reported it acknowledged
    {"ev": "nack", "seq": N, "t": T, "err": "..."}     the library gave up on it
    {"ev": "recv", "seq": N, "t": T, "p": P, "o": O}   the consumer group member received it
    {"ev": "client", "role": R, "pid": P, "id": I}  the one long-lived producer or consumer
                                                (role R) was created: process P (the driver's
                                                own for in-process clients, kcat's for kcat)
    {"ev": "error", "role": R, "err": "..."}    a non-fatal error the library reported and
                                                recovers from by itself (counted, shown)
    {"ev": "fatal", "role": R, "err": "..."}    the client died for good; the driver exits 3
    {"ev": "joined", "t": T}                    the consumer got an assignment from its group
                                                (its first join, or a rejoin after a switch)
    {"ev": "log",  "msg": "..."}                anything else worth keeping (rebalances)
T is the wall clock (seconds since the epoch) of the driver, on the same machine as the test.

Drivers never hide a failure: a client is never replaced or restarted, a client that dies is a
fatal event, and ClientRun.check_healthy() (called while every wait of the scenario polls, and at
each switch) fails the test on a fatal event, a second client of a role, a client process that
is gone, or a driver that exited.
Every message value is "<run id>:<seq>", so a record read from a cluster names its message.
"""

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

import kghelpers
from kghelpers import (INTEGRATION_DIR, admin_http, kgate_config_yaml, kgate_ports,
                       sigterm_and_wait, start_kgate, wait_for)

FAILOVER_DIR = os.path.dirname(os.path.abspath(__file__))
DRIVERS_DIR = os.path.join(FAILOVER_DIR, "drivers")
PYTHON = "/usr/bin/python3"  # Debian's python: it has confluent-kafka and kafka-python

# Switch timings measured by the client scenarios, printed at the end of the session.
SWITCH_TIMINGS = []


def tail(text, n=3000):
    return text[-n:] if text else ""


# ---------------------------------------------------------------------------------------------
# Dev clusters (librdkafka's mock cluster) and direct access to them


class DevCluster(kghelpers.DevCluster):
    """One dev cluster. .bootstrap is its own address list; .topics maps topic -> partitions;
    .version is the requested build. It can be frozen (a hung region) and read directly."""

    def __init__(self, name, version, topics, log_dir, brokers=3, rebalance_delay_ms=None):
        self.version = version
        self.topics = dict(topics)
        super().__init__(version, log_dir, [f"{t}:{p}" for t, p in self.topics.items()],
                         brokers=brokers, name=name, rebalance_delay_ms=rebalance_delay_ms)
        self.frozen = False

    def stop(self):
        """SIGTERM; returns the exit code (a test that kills clusters checks it itself)."""
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
        return [(p, o, v) for p, o, v, _, _, _ in self.read_records(topic, timeout)]

    def read_records(self, topic, timeout=30):
        """Every record of topic as (partition, offset, value str, key str or None, headers
        [(name, bytes)], timestamp ms)."""
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
                records.append((m.partition(), m.offset(), (m.value() or b"").decode(),
                                m.key().decode() if m.key() is not None else None,
                                m.headers() or [], m.timestamp()[1]))
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


class Kgate:
    """A kgate serving vclusters [(name, primary, secondary)] in front of clusters {name: DevCluster
    or bootstrap string}. The config file, state DB and logs live in work_dir."""

    def __init__(self, clusters, vclusters, work_dir, token=None, probe_ms=250, state_path=None,
                 extra_lines=()):
        self.work_dir = str(work_dir)
        self.token = token
        self.ports, self.admin_port = kgate_ports([name for name, _, _ in vclusters])
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.state_path = state_path or os.path.join(self.work_dir, "state.db")
        self.config_path = os.path.join(self.work_dir, "kgate.yaml")
        boot = {n: (c.bootstrap if isinstance(c, DevCluster) else c) for n, c in clusters.items()}
        with open(self.config_path, "w") as f:
            f.write(kgate_config_yaml(boot, [(n, self.ports[n], p, s) for n, p, s in vclusters],
                                      self.admin_port, self.state_path, admin_token=token,
                                      extra_lines=[f"health: {{ probe_interval_ms: {probe_ms} }}",
                                                   *extra_lines]))
        self.proc = None
        self.starts = 0

    def add_vcluster_keys(self, keys, vcluster="default"):
        """Adds KEYS ("mirror: {...}, offsets: {...}") to VCLUSTER's entry of the config file;
        before start()."""
        with open(self.config_path) as f:
            text = f.read()
        text, n = re.subn(rf"^(  {re.escape(vcluster)}: \{{.*)( \}})$", rf"\1, {keys}\2", text,
                          flags=re.M)
        assert n == 1, text
        with open(self.config_path, "w") as f:
            f.write(text)

    # -- process ------------------------------------------------------------------------------

    def start(self):
        self.starts += 1
        log = os.path.join(self.work_dir, f"kgate-{self.starts}.stderr")
        self.proc = start_kgate(kghelpers.KGATE_BIN, self.config_path, log,
                                list(self.ports.values()) + [self.admin_port])
        self.wait_probed()
        return self

    def wait_probed(self, timeout=60):
        """Until the health probe has looked at every cluster once (up or not): before that a
        switch is refused ("not probed yet") and /metrics shows every cluster down, which a
        slow (sanitized, loaded) start would otherwise hand to the test as its state."""
        wait_for(lambda: all(c["last_probe_unix_ms"] > 0 for c in self.status()["clusters"]),
                 timeout, interval=0.05, what="kgate's first probe of every cluster")

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
        return admin_http(self.admin_port, method, path, body,
                          token=self.token if token == "default" else token, headers=headers,
                          timeout=timeout)

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

    def audit_entries(self, max_pages=100):
        entries, after = [], 0
        for _ in range(max_pages):
            r = self.http("GET", f"/v1/audit?after={after}&limit=1000")
            assert r.status == 200, r
            if not r.json["entries"]:
                return entries
            entries += r.json["entries"]
            assert r.json["next_after"] > after, f"audit paging does not advance: {r}"
            after = r.json["next_after"]
        raise AssertionError(f"more than {max_pages} pages of audit entries")

    def metrics(self):
        r = self.http("GET", "/metrics")
        assert r.status == 200, r
        return parse_prometheus(r.text)

    def cli(self, *args, timeout=30, env=None):
        """Runs `kgate ARGS -c CONFIG` and returns the CompletedProcess (text)."""
        argv = [kghelpers.KGATE_BIN] + list(args) + ["-c", self.config_path]
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
    if kind == "rdk212":  # a C program: its arguments on the command line
        return ([os.path.join(kghelpers.DEPS, "rdk-driver-2.12"), args["bootstrap"],
                 args["topic"], args["group"], args["run"], str(args["interval_ms"])]
                + [a for k, v in args["consumer_config"].items() for a in ("-X", f"{k}={v}")])
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
                 label=None, partitions=3, consume=True, consumer_config=None):
        self.kind = label or kind
        self.driver = kind
        self.topic = topic
        self.partitions = partitions
        self.consume = consume  # False: a producer only (the scenario skips consumer checks)
        self.run_id = f"{self.kind}-{uuid.uuid4().hex[:6]}"
        self.group = f"fo-{self.run_id}"
        self.args = {"bootstrap": bootstrap, "topic": topic, "group": self.group,
                     "run": self.run_id, "interval_ms": interval_ms,
                     "producer_config": producer_config or {}, "partitions": partitions,
                     "consumer_config": consumer_config or {},
                     "consume": consume}
        self.stderr_path = os.path.join(str(log_dir), f"driver-{self.kind}.stderr")
        self.lock = threading.Lock()
        self.sent, self.acked, self.recv = {}, {}, {}
        self.nacked, self.logs, self.receipts = [], [], []
        self.clients = {}  # role -> [(id, pid)], one entry per client the driver created
        self.errors, self.fatals = [], []
        self.joined = []  # when its consumer got an assignment (joined or rejoined its group)
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
            elif kind == "client":
                self.clients.setdefault(ev["role"], []).append((ev["id"], ev["pid"]))
            elif kind == "error":
                self.errors.append((ev["role"], ev["t"], ev["err"]))
            elif kind == "fatal":
                self.fatals.append((ev["role"], ev["t"], ev["err"]))
            elif kind == "joined":
                self.joined.append(ev["t"])
            else:
                self.logs.append(json.dumps(ev))

    def alive(self):
        return self.popen.poll() is None

    def roles(self):
        return ("producer", "consumer") if self.consume else ("producer",)

    def client_identity(self):
        """{role: (id, pid)} of the one client of each role (asserts there is exactly one)."""
        with self.lock:
            clients = {r: list(c) for r, c in self.clients.items()}
        for role in self.roles():
            assert len(clients.get(role, ())) == 1, (
                f"{self.kind}: expected one {role} for the whole run, the driver created "
                f"{clients.get(role)}\n{self.diagnostics()}")
        return {role: clients[role][0] for role in self.roles()}

    def check_healthy(self):
        """Fails on any client death: a fatal event, a replaced client, a client process that is
        gone, or a driver that exited before it was stopped."""
        with self.lock:
            fatals = list(self.fatals)
            clients = {r: list(c) for r, c in self.clients.items()}
        assert not fatals, f"{self.kind}: a client died: {fatals}\n{self.diagnostics()}"
        assert self.alive(), f"{self.kind}'s driver exited early\n{self.diagnostics()}"
        for role, made in clients.items():
            assert len(made) == 1, (f"{self.kind}: the {role} was replaced: {made}\n"
                                    f"{self.diagnostics()}")
            assert process_alive(made[0][1]), (f"{self.kind}: the {role}'s process {made[0]} is "
                                               f"gone\n{self.diagnostics()}")

    def diagnostics(self):
        with self.lock:
            summary = (f"{self.kind}: sent {len(self.sent)}, acked {len(self.acked)}, "
                       f"nacked {len(self.nacked)}, received {len(self.recv)}, "
                       f"errors {len(self.errors)}, fatal {self.fatals}; clients {self.clients}; "
                       f"driver {'running' if self.alive() else 'exited ' + str(self.popen.returncode)}")
            logs = "\n".join(self.logs[-30:])
            nacks = self.nacked[-5:]
            errors = self.errors[-5:]
        self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            err = f.read().decode("utf-8", "replace")
        return (f"{summary}\nlast nacks: {nacks}\nlast errors: {errors}\nlog events:\n{logs}\n"
                f"driver stderr:\n{tail(err)}")

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

    def joins_since(self, t):
        """When its consumer got an assignment at or after t."""
        with self.lock:
            return [j for j in self.joined if j >= t]

    def nacks_between(self, t0, t1):
        with self.lock:
            return [n for n in self.nacked if t0 <= n[1] <= t1]

    def nacked_seqs(self):
        with self.lock:
            return {n[0] for n in self.nacked}

    def error_count(self):
        with self.lock:
            return len(self.errors)

    def finish(self, timeout=30):
        """Stops the driver at the end of a scenario and asserts that it exited cleanly (0): its
        clients flushed and closed without a fatal error."""
        self.stop(timeout)
        rc = self.popen.returncode
        with self.lock:
            fatals = list(self.fatals)
        assert rc == 0 and not fatals, (f"{self.kind}: the driver ended with exit code {rc}, "
                                        f"fatal events {fatals}\n{self.diagnostics()}")

    def stop(self, timeout=20):
        if self.popen is None or self._stderr.closed:
            return
        if self.popen.poll() is None:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                sigterm_and_wait(self.popen, 10)
        self.reader.join(5)
        self._stderr.close()


def wait_acks(runs, more, timeout):
    """Each of RUNS (ClientRun) gets MORE acknowledgements than it has now."""
    base = {r.kind: len(r.ack_times()) for r in runs}
    for r in runs:
        wait_for(lambda r=r: len(r.ack_times()) >= base[r.kind] + more, timeout,
                 what=f"{r.kind} to get {more} more acks\n{r.diagnostics()}")


def finish_runs(runs, cluster, topic, timeout):
    """RUNS go on producing (healthy: 100 more acks each), stop, and saw no delivery error;
    every record they were told was written is on CLUSTER's TOPIC exactly once."""
    wait_acks(runs, 100, timeout)
    for r in runs:
        r.check_healthy()
    for r in runs:
        r.stop()
    for r in runs:
        assert not r.nacked, f"{r.kind}: delivery errors {len(r.nacked)}: {r.nacked[:5]}"
    check_exactly_once(runs, cluster, topic)


def check_exactly_once(runs, cluster, topic):
    """Every acknowledged record of every run is on CLUSTER's TOPIC exactly once."""
    for r in runs:
        stored = cluster.seqs(topic, r.run_id)
        acked = set(r.ack_times())
        missing = sorted(acked - set(stored))
        twice = sorted(s for s, where in stored.items() if len(where) > 1)
        assert not missing, f"{r.kind}: {len(missing)} acked records missing: {missing[:10]}"
        assert not twice, f"{r.kind}: records stored twice: {twice[:10]}"


def process_alive(pid):
    """True while pid is a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


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
