"""A kgate fleet on one PostgreSQL state (issue 9, items 2 and 3): instances register and renew a
lease, a switch through one instance moves every instance, concurrent switches through two
instances have exactly one winner, an instance cut off from PostgreSQL fences itself
(fail-closed or serve-last-known) and catches up when it reconnects, and a name is held by one
live instance at a time.

Every test gets a database of its own on the PostgreSQL server (`pg_url`, conftest.py), and
two dev clusters (east, west). An instance is cut off from PostgreSQL by a TCP relay in this
process that the test closes (listener and every connection through it) and reopens.
Measurements (no thresholds) are printed: switch call -> last instance acknowledged, lease lost
-> fenced.
"""

import os
import socket
import threading
import time

import pytest

import kghelpers
from fohelpers import ClientRun, Kgate, metric, tail
from kghelpers import api_versions_v0, round_trip, wait_closed_by_peer, wait_for

pytestmark = pytest.mark.kgate_only

TOPICS = {"fl-a": 3, "fl-b": 3, "fl-c": 3}
ADMIN_TOKEN = "fleet-test-admin-token"
LEASE_MS = 1500  # short, so a cut-off instance fences quickly (renewed every 500 ms)


# ---------------------------------------------------------------------------------------------
# A TCP relay in front of PostgreSQL that the test can cut


class PgRelay:
    """Forwards 127.0.0.1:port to PostgreSQL. cut() closes the listener and every connection
    through it (the instance sees its connection end and reconnecting refused); restore()
    listens again on the same port."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.lock = threading.Lock()
        self.conns = []
        self.listener = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.restore()

    def restore(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        # shutdown() first: a close() alone leaves the accept() blocked in the other thread
        # listening on the old socket.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.cut()


# ---------------------------------------------------------------------------------------------
# Instances


class FleetKgate(Kgate):
    """A kgate on the PostgreSQL state STATE_URL as instance NAME."""

    def __init__(self, clusters, work_dir, state_url, name, lease_ms=LEASE_MS,
                 on_state_loss="fail-closed", ack_timeout_ms=5000,
                 vclusters=(("default", "east", "west"),)):
        # The configuration's token: it opens the admin API even when the state store (which
        # holds the other tokens) is out of reach.
        super().__init__(clusters, list(vclusters), work_dir, state_path=state_url,
                         token=ADMIN_TOKEN)
        self.name = name
        with open(self.config_path, "a") as f:
            f.write(f"instance: {{ name: {name}, lease_ms: {lease_ms}, "
                    f"on_state_loss: {on_state_loss}, ack_timeout_ms: {ack_timeout_ms} }}\n")

    def stop(self):
        """SIGTERM, once: the exit code must be 0 (an AssertionError with the log otherwise)."""
        if not self.alive():
            return 0
        rc = super().stop()
        assert rc == 0, f"{self.name} exited {rc} after SIGTERM; log:\n{tail(self.log())}"
        return rc

    def readyz(self):
        return self.http("GET", "/readyz", token=None)

    def fleet(self):
        return self.status()["fleet"]


def pg_url_via(url, port):
    """URL with its host:port replaced by 127.0.0.1:PORT (the relay)."""
    scheme, rest = url.split("://", 1)
    auth, _, tail_ = rest.partition("@") if "@" in rest else ("", "", rest)
    hostport, slash, path = tail_.partition("/")
    prefix = f"{auth}@" if auth else ""
    return f"{scheme}://{prefix}127.0.0.1:{port}{slash}{path}"


def pg_target(url):
    rest = url.split("://", 1)[1]
    hostport = (rest.split("@", 1)[-1]).split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    return host or "127.0.0.1", int(port)


@pytest.fixture
def clusters(make_clusters):
    return make_clusters(topics=TOPICS)


@pytest.fixture
def fleet(tmp_path, clusters, pg_url):
    """fleet(name, **kwargs) -> a started FleetKgate on this test's database; stopped (SIGTERM,
    exit 0) at teardown."""
    def make(work, name, state_url=None, start=True, **kwargs):
        kg = FleetKgate(clusters, work, state_url or pg_url, name, **kwargs)
        if start:
            kg.start()
        return kg

    factory = kghelpers.factory_in_subdirs(tmp_path, "kgate-", make)
    start = next(factory)
    yield lambda name, **kwargs: start(name=name, **kwargs)
    next(factory, None)


@pytest.fixture
def relay(pg_url):
    """A PgRelay in front of this test's PostgreSQL; closed at teardown."""
    r = PgRelay(*pg_target(pg_url))
    yield r
    r.close()


def print_measure(what, value_ms):
    print(f"MEASURE {what}: {value_ms:.1f} ms")


def wait_fleet_sees(kg, names, timeout=30):
    wait_for(lambda: sorted(i["name"] for i in kg.fleet()["instances"] if i["live"]) == sorted(
        names), timeout, what=f"{kg.name} to list the live instances {names}")


# ---------------------------------------------------------------------------------------------
# Propagation


def test_switch_through_one_moves_every_instance(fleet, clusters, tmp_path):
    gws = [fleet(f"gw-{i}") for i in range(3)]
    names = [g.name for g in gws]
    wait_fleet_sees(gws[0], names)
    # Clients spread over the instances: librdkafka and kafka-python.
    kinds = [("confluent", "fl-a"), ("kafka-python", "fl-b"), ("confluent", "fl-c")]
    runs = []
    try:
        for gw, (kind, topic) in zip(gws, kinds):
            runs.append(ClientRun(kind, gw.bootstrap("default"), topic, tmp_path,
                                  label=f"{kind}-{gw.name}", consume=False).start())
        for r in runs:
            wait_for(lambda: (r.check_healthy() or True) and len(r.ack_times()) >= 5, 60,
                     what=f"{r.kind} producing through kgate before the switch")
        reply, t_call, t_ret = gws[0].switch("default", to="west")
        assert reply.status == 200, reply
        body = reply.json
        assert body["changed"] is True and body["to"] == "west", body
        # The API call returned once every live instance acknowledged the new epoch.
        assert sorted(body["instances"]["acked"]) == sorted(names), body
        assert body["instances"]["pending"] == [], body
        print_measure("switch API call (3 instances, all acked)", (t_ret - t_call) * 1000)
        print_measure("commit -> last instance acked", body["instances"]["wait_ms"])
        for gw in gws:
            vc = gw.vcluster_status()
            assert (vc["active"], vc["epoch"]) == ("west", body["epoch"]), (gw.name, vc)
        # Every instance's clients end up producing to the new side.
        for r in runs:
            def on_west():
                r.check_healthy()
                after = r.acked_sent_after(t_ret)
                return after and set(clusters["west"].seqs(r.topic, r.run_id)) & after
            wait_for(on_west, 90, interval=1, what=f"{r.kind} producing to west after the switch")
        # The fleet view: every instance, its epoch, a fresh lease.
        fl = gws[1].fleet()
        assert fl["lease_ok"] is True and fl["instance"] == "gw-1", fl
        wait_for(lambda: all(i["epochs"].get("default") == body["epoch"]
                             for i in gws[1].fleet()["instances"]), 30,
                 what="every instance's row to show the new epoch")
        for i in gws[1].fleet()["instances"]:
            assert i["version"] and i["state"] == "serving" and i["live"], i
            assert 0 <= i["lease_age_ms"] < 60000, i
        samples = gws[2].metrics()
        assert metric(samples, "kgate_instance_lease_ok") == 1.0
        assert metric(samples, "kgate_instance_epoch", vcluster="default") == body["epoch"]
        assert metric(samples, "kgate_fleet_instances", state="serving") == 3.0
        out = gws[2].cli("status", "--admin", gws[2].admin_url)
        assert out.returncode == 0, out.stderr
        for n in names:
            assert n in out.stdout, out.stdout
    finally:
        for r in runs:
            r.stop()


def test_concurrent_switches_through_two_instances(fleet):
    a, b = fleet("gw-a"), fleet("gw-b")
    wait_fleet_sees(a, ["gw-a", "gw-b"])
    conflicts = 0
    epoch = 0
    for round_ in range(12):
        target = "west" if a.vcluster_status()["active"] == "east" else "east"
        barrier = threading.Barrier(2)
        replies = {}

        def go(kg):
            barrier.wait()
            replies[kg.name] = kg.switch("default", to=target)[0]

        threads = [threading.Thread(target=go, args=(kg,)) for kg in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        won = [n for n, r in replies.items() if r.status == 200 and r.json["changed"]]
        assert len(won) == 1, replies  # exactly one switch per round
        epoch += 1
        winner = replies[won[0]].json
        assert winner["epoch"] == epoch, winner
        loser = replies["gw-b" if won[0] == "gw-a" else "gw-a"]
        if loser.status == 409:
            # The loser names the winner's side and epoch.
            assert (loser.json["active"], loser.json["epoch"]) == (target, epoch), loser
            assert "won" in loser.json["error"], loser
            conflicts += 1
        else:
            # It had already seen the winner's switch: nothing left to do.
            assert loser.status == 200 and loser.json["changed"] is False, loser
            assert loser.json["epoch"] == epoch, loser
        for kg in (a, b):
            wait_for(lambda: kg.vcluster_status()["epoch"] == epoch, 30,
                     what=f"{kg.name} on epoch {epoch}")
            assert kg.vcluster_status()["active"] == target
        if conflicts >= 2:
            break
    assert conflicts >= 1, "no round had both switches in flight at once"
    refused = [e for e in a.audit_entries() if e["type"] == "switch.refused"]
    assert len(refused) == conflicts, refused


# ---------------------------------------------------------------------------------------------
# Fencing


def kafka_socket(kg):
    s = socket.create_connection(("127.0.0.1", kg.ports["default"]), timeout=10)
    round_trip(s, api_versions_v0(1))
    return s


def new_connection_refused(kg):
    """True when a new client connection is closed at once without an answer."""
    try:
        s = socket.create_connection(("127.0.0.1", kg.ports["default"]), timeout=5)
    except OSError:
        return True
    try:
        s.sendall(api_versions_v0(2))
        s.settimeout(5)
        return s.recv(4) == b""
    except OSError:
        return True
    finally:
        s.close()


def test_fail_closed_fences_and_catches_up_on_a_missed_switch(relay, fleet, pg_url):
    healthy = fleet("gw-ok")
    cut = fleet("gw-cut", state_url=pg_url_via(pg_url, relay.port))
    wait_fleet_sees(healthy, ["gw-ok", "gw-cut"])
    client = kafka_socket(cut)
    assert cut.readyz().status == 200
    t_cut = time.monotonic()
    relay.cut()
    wait_for(lambda: cut.readyz().status == 503, 30, interval=0.02,
             what="the cut-off instance to fence itself")
    print_measure(f"lease lost -> fenced (fail-closed, lease {LEASE_MS} ms)",
                  (time.monotonic() - t_cut) * 1000)
    r = cut.readyz()
    assert r.json["ready"] is False and r.json["state_store"] == "unreachable", r
    assert "state store unreachable" in r.json["reason"], r
    assert "fail-closed" in r.json["state_lost"], r
    # Its clients are closed (they move to healthy instances) and no new one is taken.
    assert wait_closed_by_peer(client, 30), "the fenced instance kept a client connection"
    assert new_connection_refused(cut)
    # A switch through the healthy instance while the other is cut off: the cut-off one is
    # no longer live (its lease ran out), so nobody waits for it.
    reply, _, _ = healthy.switch("default", to="west")
    assert reply.status == 200, reply
    epoch = reply.json["epoch"]
    assert reply.json["instances"]["acked"] == ["gw-ok"], reply
    assert reply.json["instances"]["pending"] == [], reply
    assert cut.vcluster_status()["epoch"] == epoch - 1  # it cannot know yet
    # Mutations are refused while the state is out of reach.
    r = cut.http("POST", "/v1/vclusters/default/failback", {"reason": "x"})
    assert r.status == 503 and "state store unreachable" in r.json["error"], r
    # Back: the instance re-reads the epochs before accepting, never serving the old one.
    relay.restore()
    samples = []

    def back():
        ready = cut.readyz().status == 200
        vc = cut.vcluster_status()
        samples.append((ready, vc["epoch"], vc["active"]))
        return ready
    wait_for(back, 30, interval=0.02, what="the instance to hold its lease again")
    assert all(e == epoch and a == "west" for ready, e, a in samples if ready), samples
    s = kafka_socket(cut)  # accepting again
    s.close()
    assert cut.fleet()["lease_ok"] is True
    assert "lease lost" in cut.log() and "holds its lease again" in cut.log()


def test_serve_last_known_keeps_routing_and_refuses_changes(relay, fleet, pg_url):
    other = fleet("gw-other")
    cut = fleet("gw-slk", state_url=pg_url_via(pg_url, relay.port),
                on_state_loss="serve-last-known")
    wait_fleet_sees(other, ["gw-other", "gw-slk"])
    client = kafka_socket(cut)
    t_cut = time.monotonic()
    relay.cut()
    wait_for(lambda: cut.readyz().json.get("state_store") == "unreachable", 30, interval=0.02,
             what="the cut-off instance to notice it lost its lease")
    print_measure(f"lease lost -> last-known mode (lease {LEASE_MS} ms)",
                  (time.monotonic() - t_cut) * 1000)
    r = cut.readyz()
    assert r.status == 200 and r.json["ready"] is True, r  # still serving
    assert "state store unreachable" in r.json["state_lost"], r
    assert "serve-last-known" in r.json["state_lost"], r
    # Existing and new client connections keep working on the last epoch it saw.
    round_trip(client, api_versions_v0(7))
    kafka_socket(cut).close()
    assert cut.vcluster_status()["epoch"] == 0
    # Changes are refused: a switch, a chaos rule.
    reply, _, _ = cut.switch("default", to="west")
    assert reply.status == 503 and "state store unreachable" in reply.json["error"], reply
    r = cut.http("POST", "/v1/chaos/rules", {"action": "delay", "delay_ms": 1})
    assert r.status == 503 and "state store unreachable" in r.json["error"], r
    assert metric(cut.metrics(), "kgate_instance_lease_ok") == 0.0
    relay.restore()
    wait_for(lambda: cut.readyz().json.get("state_store") == "ok", 30,
             what="the instance to hold its lease again")
    # The store's own connection comes back on its own schedule: a switch it cannot write
    # yet fails whole (503, nothing written) and is tried again.
    replies = []

    def switched():
        replies.append(cut.switch("default", to="west")[0])
        assert replies[-1].status in (200, 503), replies[-1]
        return replies[-1].status == 200
    wait_for(switched, 30, interval=0.2, what="a switch through the instance again")
    assert replies[-1].json["changed"] is True, replies
    client.close()


# ---------------------------------------------------------------------------------------------
# Names


def test_same_name_twice_is_refused(fleet):
    first = fleet("gw-same")
    second = fleet("gw-same", start=False)
    proc = kghelpers.Proc([kghelpers.KGATE_BIN, "serve", "-c", second.config_path],
                          os.path.join(second.work_dir, "dup.stderr"), stdout=None)
    wait_for(lambda: not proc.alive(), 60, what="the second gw-same to refuse to start")
    rc = proc.terminate()
    assert rc != 0, rc
    assert "held by a live instance" in proc.stderr_text(), proc.stderr_text()
    # The first one is untouched; once it stops (and unregisters) the name is free again.
    assert first.readyz().status == 200
    assert [i["name"] for i in first.fleet()["instances"]] == ["gw-same"]
    assert first.stop() == 0
    second.start()
    assert second.fleet()["instances"][0]["name"] == "gw-same"


def test_a_crashed_instance_restarts_under_its_name(fleet):
    gw = fleet("gw-crash")
    other = fleet("gw-watch")
    gw.kill9()  # no unregistering: its row stays until the lease runs out
    gw.start()  # waits for that lease instead of refusing
    assert "waiting up to" in gw.log(), tail(gw.log())
    wait_fleet_sees(other, ["gw-crash", "gw-watch"])
    assert gw.readyz().status == 200


def test_instances_reconnect_after_postgres_restarts(fleet, pg_server):
    # A lease long enough to outlast the restart: this is about reconnecting, not fencing.
    a, b = fleet("gw-r1", lease_ms=6000), fleet("gw-r2", lease_ms=6000)
    wait_fleet_sees(a, ["gw-r1", "gw-r2"])
    reply, _, _ = a.switch("default", to="west")  # the ack connection is open from here on
    assert reply.status == 200 and sorted(reply.json["instances"]["acked"]) == ["gw-r1", "gw-r2"]
    pg_server.stop()
    pg_server.start()
    # Every connection of both instances was cut: the store's, the fleet's LISTEN and the ack
    # connection. They come back: a switch is acknowledged by both again.
    replies = []

    def switched():
        r = a.switch("default", to="east" if a.vcluster_status()["active"] == "west" else "west")[0]
        replies.append(r)
        assert r.status in (200, 503), r
        return r.status == 200 and sorted(r.json["instances"]["acked"]) == ["gw-r1", "gw-r2"]
    wait_for(switched, 60, interval=0.5, what="a switch acknowledged by both after the restart")
    wait_for(lambda: b.vcluster_status()["epoch"] == replies[-1].json["epoch"], 30,
             what="gw-r2 on the new epoch")
    assert b.readyz().status == 200 and a.readyz().status == 200
