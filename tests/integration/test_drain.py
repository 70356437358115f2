"""Drain (docs/fleet.md, "Load balancer and drain"): an instance stops serving without cutting a
request. The deployment shape: HAProxy (TCP mode) in front of two kgate instances that share one
SQLite state file and health-check each instance's /readyz; every instance listens on the same
ports on its own address (127.0.0.2, 127.0.0.3: two hosts) and advertises HAProxy's, so clients
only ever see HAProxy. Real producers (confluent-kafka with idempotence, kafka-python) produce
through it while instance A drains, by the API or by SIGTERM.

The single-instance tests look at one connection at a time with raw Kafka frames: an idle
connection closes at once, one with a response in flight (a chaos latency on the response)
only after that response, one whose request is half sent only after the rest was sent and
answered."""

import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

import kghelpers
from kghelpers import (KGATE_PORTS, DevCluster, Proc, admin_http, api_versions_v0,
                       encode_request, free_port_range, kgate_config_yaml, parse_api_versions_v0,
                       recv_frame, round_trip, wait_closed_by_peer, wait_for, wait_port_open)

pytestmark = pytest.mark.kgate_only

TOPIC = "drain3"
LB_HOST = "127.0.0.1"
HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3"}
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


@pytest.fixture
def cluster(tmp_path, private_kgate):
    dc = DevCluster("2.0.2", tmp_path, [f"{TOPIC}:3"], brokers=3)
    yield dc
    dc.stop()


class Instance:
    """One kgate serving vcluster "default" on HOST:BASE.. with its admin API on 127.0.0.1."""

    def __init__(self, tmp_path, name, host, base, admin_port, bootstrap, state_path,
                 advertised_host, drain_timeout_ms=20000):
        self.name, self.host, self.base, self.admin_port = name, host, base, admin_port
        self.config_path = os.path.join(str(tmp_path), f"kgate-{name}.yaml")
        with open(self.config_path, "w") as f:
            f.write(kgate_config_yaml(
                {"east": bootstrap}, [("default", base, "east", None)], admin_port, state_path,
                listen=host, advertised_host=advertised_host,
                extra_lines=[f"limits: {{ drain_timeout_ms: {drain_timeout_ms} }}"]))
        self.proc = Proc([kghelpers.KGATE_BIN, "serve", "-c", self.config_path],
                         os.path.join(str(tmp_path), f"kgate-{name}.stderr"), stdout=None)
        for h, p in ((host, base), ("127.0.0.1", admin_port)):
            if not wait_port_open(h, p, 20, alive=self.proc.alive):
                self.proc.terminate()
                raise AssertionError(f"kgate {name} did not open {h}:{p}:\n"
                                     + self.proc.stderr_text()[-4000:])

    def api(self, method, path, body=None):
        return admin_http(self.admin_port, method, path, body)

    def connections(self):
        reply = self.api("GET", "/v1/status")
        assert reply.status == 200, reply
        return sum(vc["client_connections"] for vc in reply.json["vclusters"])

    def drain_state(self):
        reply = self.api("GET", "/v1/drain")
        assert reply.status == 200, reply
        return reply.json

    def stop(self):
        if self.proc.alive():
            rc = self.proc.terminate()
            print(f"---- kgate {self.name} stderr ----\n{self.proc.stderr_text()[-6000:]}")
            assert rc == 0, f"kgate {self.name} exited with {rc}"


def haproxy_config(base, instances):
    """The layout of deploy/haproxy.cfg, for the test's ports: one frontend over the whole
    advertised port range, each server reached on the port the client dialled."""
    last = base + KGATE_PORTS - 2  # bootstrap + node ids 0..31
    servers = "\n".join(
        f"    server {i.name} {i.host} check addr 127.0.0.1 port {i.admin_port}"
        for i in instances)
    # maxconn sizes HAProxy's file descriptors (2 a connection, plus listeners): 4096 needed
    # more than a machine whose open-files limit is 8192 allows, and HAProxy refuses to start.
    return f"""global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    retries 3
    option redispatch
frontend kafka
    bind {LB_HOST}:{base}-{last}
    default_backend kgate
backend kgate
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 1 rise 2
{servers}
"""


class Fleet:
    def __init__(self, tmp_path, cluster):
        hosts = (LB_HOST, *HOSTS.values())
        base = free_port_range(KGATE_PORTS + 2, hosts)
        state = os.path.join(str(tmp_path), "shared-state.db")
        self.base = base
        self.a = Instance(tmp_path, "a", HOSTS["a"], base, base + KGATE_PORTS, cluster.bootstrap,
                          state, LB_HOST)
        self.b = Instance(tmp_path, "b", HOSTS["b"], base, base + KGATE_PORTS + 1,
                          cluster.bootstrap, state, LB_HOST)
        self.haproxy = None
        try:
            self.haproxy = self._start_haproxy(tmp_path, base)
        except BaseException:
            self.stop()  # the instances must not outlive a failed start
            raise
        self.bootstrap = f"{LB_HOST}:{base}"

    def _start_haproxy(self, tmp_path, base):
        cfg = os.path.join(str(tmp_path), "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(base, [self.a, self.b]))
        check = subprocess.run([HAPROXY, "-c", "-f", cfg], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        proc = Proc([HAPROXY, "-db", "-f", cfg], os.path.join(str(tmp_path), "haproxy.stderr"),
                    stdout=None)
        if not wait_port_open(LB_HOST, base, 20, alive=proc.alive):
            proc.terminate()
            raise AssertionError(proc.stderr_text())
        return proc

    def stop(self):
        if self.haproxy:
            self.haproxy.terminate()
        kghelpers.stop_all([self.a, self.b])


@pytest.fixture
def fleet(tmp_path, cluster):
    f = Fleet(tmp_path, cluster)
    yield f
    f.stop()


class Producers:
    """confluent-kafka (acks=all, idempotence) and kafka-python (acks=all, retries), each
    producing continuously on its own thread, recording every acknowledged record and every
    delivery error."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.acked = {"rdk": [], "kpy": []}
        self.errors = []
        self.threads = [threading.Thread(target=self._rdk, daemon=True),
                        threading.Thread(target=self._kpy, daemon=True)]
        for t in self.threads:
            t.start()

    def _ack(self, who, partition, offset, value):
        with self.lock:
            self.acked[who].append((partition, offset, value))

    def _fail(self, who, what):
        with self.lock:
            self.errors.append(f"{who}: {what}")

    def _rdk(self):
        from confluent_kafka import Producer

        def on_error(err):
            if err.fatal():
                self._fail("rdk", f"fatal: {err}")

        def on_delivery(err, msg):
            if err:
                self._fail("rdk", str(err))
            else:
                self._ack("rdk", msg.partition(), msg.offset(), msg.value())

        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all",
                      "enable.idempotence": True, "linger.ms": 5, "client.id": "drain-rdk",
                      "error_cb": on_error})
        i = 0
        while not self.stopping.is_set():
            p.produce(TOPIC, value=f"rdk-{i}".encode(), on_delivery=on_delivery)
            i += 1
            p.poll(0.003)
        left = p.flush(60)
        if left:
            self._fail("rdk", f"{left} record(s) not delivered by flush")

    def _kpy(self):
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", retries=50,
                          retry_backoff_ms=100, max_in_flight_requests_per_connection=1,
                          linger_ms=5, client_id="drain-kpy", api_version=(2, 0, 0))
        i = 0
        while not self.stopping.is_set():
            value = f"kpy-{i}".encode()
            fut = p.send(TOPIC, value=value)
            fut.add_callback(lambda md, v=value: self._ack("kpy", md.partition, md.offset, v))
            fut.add_errback(lambda e: self._fail("kpy", repr(e)))
            i += 1
            time.sleep(0.003)
        p.flush(60)
        p.close(30)

    def count(self, who):
        with self.lock:
            return len(self.acked[who])

    def wait_progress(self, more, what):
        """Both producers get MORE further records acknowledged."""
        start = {w: self.count(w) for w in self.acked}
        wait_for(lambda: all(self.count(w) >= start[w] + more for w in start), 60,
                 what=f"{more} more acknowledged records per producer {what}")

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(120)
            assert not t.is_alive(), "a producer did not finish"


def consume_all(bootstrap):
    """{(partition, offset): value} of everything in TOPIC, read straight from the cluster."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "drain-check",
                  "enable.auto.commit": False})
    try:
        parts = [TopicPartition(TOPIC, p, 0) for p in range(3)]
        high = {p.partition: c.get_watermark_offsets(p, timeout=30)[1] for p in parts}
        c.assign(parts)
        got = {}
        deadline = time.monotonic() + 60
        while any(sum(1 for (p, _) in got if p == part) < high[part] for part in high):
            assert time.monotonic() < deadline, f"consumed {len(got)} of {sum(high.values())}"
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            got[(msg.partition(), msg.offset())] = msg.value()
        return got
    finally:
        c.close()


def assert_all_acked_present(producers, bootstrap):
    assert producers.errors == [], producers.errors
    got = consume_all(bootstrap)
    for who, records in producers.acked.items():
        missing = [(p, o, v) for p, o, v in records if got.get((p, o)) != v]
        assert not missing, f"{who}: {len(missing)} acknowledged record(s) not in the topic, " \
                            f"e.g. {missing[:5]}"


def connect_refused(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


# ---------------------------------------------------------------------------------------------
# Through HAProxy: clients move with no produce error


@pytest.mark.guard(300)
@pytest.mark.parametrize("how", ["api", "sigterm"])
def test_drain_moves_clients_with_no_produce_error(fleet, cluster, how):
    a, b = fleet.a, fleet.b
    producers = Producers(fleet.bootstrap)
    try:
        producers.wait_progress(100, "before the drain")
        # Round robin spreads the clients' connections over both instances.
        wait_for(lambda: a.connections() > 0 and b.connections() > 0, 60,
                 what="connections on both instances")
        if how == "api":
            reply = a.api("POST", "/v1/drain", {"within_ms": 3000})
            assert reply.status == 200, reply
            assert reply.json["state"] in ("draining", "drained"), reply
            ready = a.api("GET", "/readyz")
            assert ready.status == 503 and ready.json["reason"] == "draining", ready
            wait_for(lambda: a.drain_state()["state"] == "drained", 60, what="A drained")
            assert a.connections() == 0
            assert connect_refused(a.host, a.base), "A still accepts while drained"
        else:
            a.proc.popen.send_signal(15)
            assert a.proc.popen.wait(60) == 0, a.proc.stderr_text()[-4000:]
        producers.wait_progress(100, "after A drained (B serves them)")
        assert b.connections() > 0
    finally:
        producers.stop()
    assert_all_acked_present(producers, cluster.bootstrap)
    if how == "api":
        audit = b.api("GET", "/v1/audit?limit=50").json  # the shared state: B sees A's entry
        drains = [e for e in audit["entries"] if e["type"] == "gateway.drain"]
        assert drains and drains[-1]["details"]["within_ms"] == 3000, audit
    else:
        assert "SIGTERM: draining" in a.proc.stderr_text()


# ---------------------------------------------------------------------------------------------
# One instance, one connection at a time


@pytest.fixture
def single(tmp_path, cluster):
    base = free_port_range(KGATE_PORTS + 1)
    inst = Instance(tmp_path, "single", "127.0.0.1", base, base + KGATE_PORTS, cluster.bootstrap,
                    os.path.join(str(tmp_path), "state.db"), "127.0.0.1")
    yield inst
    inst.stop()


def connect_ready(inst, client_id="kgate-test"):
    """A connection that has had one exchange: proxied, idle."""
    s = socket.create_connection(("127.0.0.1", inst.base), timeout=30)
    frame = encode_request(18, 0, 1, client_id=client_id)
    error, apis = parse_api_versions_v0(round_trip(s, frame))
    assert error == 0 and apis
    return s


def test_idle_closes_at_once_busy_after_its_response(single):
    idle = connect_ready(single)
    busy = connect_ready(single, client_id="slowpoke")
    half = connect_ready(single)
    rule = single.api("POST", "/v1/chaos/rules",
                      {"type": "latency", "client_id": "slowpoke", "on": "response",
                       "delay_ms": 4000})
    assert rule.status == 201, rule
    # Metadata goes to the broker (ApiVersions may be answered by kgate itself).
    busy.sendall(encode_request(3, 1, 2, struct.pack(">i", -1), client_id="slowpoke"))
    frame = api_versions_v0(3)
    half.sendall(frame[:7])  # the size and part of the header: a request begun
    wait_for(lambda: single.connections() == 3, 30, what="three connections")
    reply = single.api("POST", "/v1/drain", {"within_ms": 0})
    assert reply.status == 200, reply
    assert wait_closed_by_peer(idle, 30), "the idle connection was not closed"
    # The busy one is still open: its response is held, and it is not cut.
    busy.settimeout(0.2)
    with pytest.raises(socket.timeout):
        busy.recv(1)
    # The half-sent request is read to its end and answered, then the connection closes.
    half.sendall(frame[7:])
    half.settimeout(30)
    resp = recv_frame(half)
    assert struct.unpack(">i", resp[:4])[0] == 3
    assert wait_closed_by_peer(half, 30)
    busy.settimeout(30)
    resp = recv_frame(busy)
    assert struct.unpack(">i", resp[:4])[0] == 2, "the held response, whole"
    assert wait_closed_by_peer(busy, 30), "the busy connection stays open after its response"
    wait_for(lambda: single.drain_state()["state"] == "drained", 30, what="drained")
    for s in (idle, busy, half):
        s.close()


def test_cli_drain_and_cancel(single):
    conn = connect_ready(single)
    url = f"http://127.0.0.1:{single.admin_port}"
    out = kghelpers.run([kghelpers.KGATE_BIN, "drain", "--within", "1s", "--admin", url],
                        timeout=60)
    assert "drained: 0 connection(s) left" in out.stdout.decode(), out.stdout
    assert wait_closed_by_peer(conn, 30)
    assert connect_refused("127.0.0.1", single.base)
    status = kghelpers.run([kghelpers.KGATE_BIN, "drain", "status", "--admin", url, "--json"],
                           timeout=30)
    assert '"drained"' in status.stdout.decode()
    assert admin_http(single.admin_port, "GET", "/readyz").status == 503
    # Bad input: a clear error, nothing changed.
    bad = single.api("POST", "/v1/drain", {"within_ms": -1})
    assert bad.status == 400 and "within_ms" in bad.json["error"], bad
    bad = kghelpers.run([kghelpers.KGATE_BIN, "drain", "--within", "soon", "--admin", url],
                        timeout=30, check=False)
    assert bad.returncode == 2 and b"not a duration" in bad.stderr
    cancel = kghelpers.run([kghelpers.KGATE_BIN, "drain", "cancel", "--admin", url], timeout=30)
    assert b"serving" in cancel.stdout
    assert admin_http(single.admin_port, "GET", "/readyz").status == 200
    conn = connect_ready(single)  # listening again, and proxying
    conn.close()
    again = single.api("POST", "/v1/drain/cancel")
    assert again.status == 409, again
