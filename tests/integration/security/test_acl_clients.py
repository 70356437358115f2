"""ACLs at kgate (issue 8, item 5) as each client library reports them: kafka-python, KafkaJS,
kcat, librdkafka 2.0.2 (confluent-kafka) for what test_acl_enforcement.py leaves out (idempotence,
transactions), librdkafka 2.12 (build/deps/rdk-client-2.12) and @platformatic/kafka.

Three users log in with SCRAM; each test asserts the library's own error (class, type, code)
for every operation class it has, allowed and denied: produce, consume in a group, listing
topics (Metadata filtered), a cluster-level call (an idempotent producer's IdempotentWrite,
implied by Write on a topic as in KIP-679, or an admin request), transactional ids (refused at
FindCoordinator, at InitProducerId, and a transaction committed); with prefixed and wildcard
(literal `*` and `User:*`) bindings and DENY beating ALLOW. Every test runs once per side of the
virtual cluster (a librdkafka 2.0.2 mock, then after a failover a 2.12 one) and expects the same
answers on both.

One gateway per module: a mixed 2.0.2/2.12 virtual cluster, and (for @platformatic/kafka, which
needs Kafka >= 3.5 API versions that a 2.0.2 mock lacks) a 2.12/2.12 one started only when its
tests run.

About the mock clusters: a Metadata request naming a topic the principal may not Describe
reaches the cluster under a stand-in name (kgate's way to keep the frame's size), and
librdkafka's mock creates any topic a Metadata request names, valid name or not (a Kafka broker
refuses such names). Those stand-ins then exist in the mock, and a principal allowed to Describe
every topic sees them: listings are compared on the topics this module created."""

import json
import os
import re
import time
import uuid

import pytest

import kghelpers
from kghelpers import DIRECT, ROOT, DevCluster, run, stop_all, wait_for
from secgate import librdkafka_sasl
from tlsgate import Gate

MECHANISM = "SCRAM-SHA-512"
TOPICS = ["pay.orders:3", "pay.audit:1", "pub.news:1", "ops.logs:1"]
KNOWN_TOPICS = {t.split(":")[0] for t in TOPICS}
NODE_DIR = os.path.dirname(os.path.abspath(__file__))
RDK_CLIENT = os.path.join(ROOT, "build", "deps", "rdk-client-2.12")


def binding(principal, permission, rtype, name, pattern, *operations):
    return {"principal": principal, "permission": permission, "resource_type": rtype,
            "resource_name": name, "pattern_type": pattern, "operations": list(operations)}


BINDINGS = [
    # alice: a prefixed allow, a literal deny inside it
    binding("User:alice", "allow", "topic", "pay.", "prefixed", "Write", "Read"),
    binding("User:alice", "deny", "topic", "pay.audit", "literal", "Write"),
    binding("User:alice", "allow", "group", "ga-", "prefixed", "Read"),
    binding("User:alice", "allow", "transactional_id", "tx-alice", "prefixed", "Write"),
    binding("User:alice", "allow", "transactional_id", "tx-ro", "prefixed", "Describe"),
    # everyone: a wildcard principal
    binding("User:*", "allow", "topic", "pub.news", "literal", "Read"),
    # bob: wildcard resources, prefixed denies beating them
    binding("User:bob", "allow", "topic", "*", "literal", "All"),
    binding("User:bob", "deny", "topic", "pay.", "prefixed", "All"),
    binding("User:bob", "allow", "group", "*", "literal", "Read"),
    binding("User:bob", "deny", "group", "gx-", "prefixed", "Read"),
    binding("User:bob", "allow", "cluster", "kafka-cluster", "literal", "IdempotentWrite"),
    # carol: her one Write is denied as well, so it implies no IdempotentWrite (KIP-679)
    binding("User:carol", "allow", "topic", "pub.news", "literal", "Write"),
    binding("User:carol", "deny", "topic", "pub.news", "literal", "Write"),
]

# What alice and bob may list: alice by her prefixed allow and User:*, bob by his wildcard
# (minus the prefixed deny) and User:*. (carol: User:*'s pub.news only.)
LISTED = {"alice": ["pay.audit", "pay.orders", "pub.news"], "bob": ["ops.logs", "pub.news"]}
SIDES = [("east", "2.0.2"), ("west", "2.12")]
SIDE_IDS = [f"{name}-{version}" for name, version in SIDES]


def password(user):
    return f"{user}-pw-secret"


class AclGate:
    """Gate over two dev clusters with users alice, bob and carol and BINDINGS; .use(side)."""

    def __init__(self, work, versions):
        self.started = []  # stopped by stop(), also when starting fails half-way
        try:
            self._start(work, versions)
        except BaseException:
            self.stop()
            raise

    def _start(self, work, versions):
        self.clusters = {}
        for name, version in zip(("east", "west"), versions):
            self.clusters[name] = DevCluster(version, work, TOPICS, name=name)
            self.started.append(self.clusters[name])
        self.gate = Gate(work, [f'{n}: {{ bootstrap: "{c.bootstrap}" }}'
                                for n, c in self.clusters.items()],
                         ["primary: east", "secondary: west", "auth: gateway", "acls: enabled",
                          "listener:", f"  sasl: [{MECHANISM}]"])
        self.started.insert(0, self.gate)
        self.bootstrap = f"127.0.0.1:{self.gate.base}"
        for user in ("alice", "bob", "carol"):
            self.gate.users_add(user, MECHANISM, password(user))
        for b in BINDINGS:
            reply = self.gate.admin("POST", "/v1/acls", b)
            assert reply.status == 201, reply
        wait_for(lambda: all(self.gate.cluster_status(n)["up"] for n in self.clusters), 20,
                 what="both clusters probed up")

    def active(self):
        status = self.gate.admin("GET", "/v1/status").json
        return next(v for v in status["vclusters"] if v["name"] == "default")["active"]

    def use(self, side):
        """Makes SIDE the active cluster (a failover or failback through the admin API)."""
        if self.active() != side:
            reply = self.gate.admin("POST", "/v1/vclusters/default/failover",
                                    {"to": side, "reason": "acl client drill"})
            assert reply.status == 200 and reply.json["changed"], reply
        assert self.active() == side

    def denials(self):
        return self.gate.metric("kgate_acl_denials_total", vcluster="default")

    def stop(self):
        stop_all(self.started)


def start_gate(tmp_path_factory, versions):
    if DIRECT:
        pytest.skip("ACLs at kgate need kgate (KGATE_TEST_DIRECT=1)")
    return AclGate(tmp_path_factory.mktemp("aclgate"), versions)


@pytest.fixture(scope="module")
def mixed(private_kgate, tmp_path_factory):
    """east: librdkafka 2.0.2's mock, west: 2.12's."""
    g = start_gate(tmp_path_factory, ("2.0.2", "2.12"))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def modern(private_kgate, tmp_path_factory):
    """east and west both 2.12 mocks (@platformatic/kafka needs their API versions)."""
    g = start_gate(tmp_path_factory, ("2.12", "2.12"))
    yield g
    g.stop()


@pytest.fixture(params=[s[0] for s in SIDES], ids=SIDE_IDS)
def side(request):
    return request.param


@pytest.fixture(params=["east", "west"], ids=["east-2.12", "west-2.12"])
def modern_side(request):
    return request.param


def tag():
    return uuid.uuid4().hex[:8]


def assert_answers(g, active, cases):
    """With ACTIVE the active side of G, runs CASES ({name: (call(g, a fresh tag), expected)})
    in order and asserts every answer."""
    g.use(active)
    t = tag()
    got = {name: call(g, t) for name, (call, _) in cases.items()}
    assert got == {name: want for name, (_, want) in cases.items()}
    assert g.active() == active


# ---------------------------------------------------------------------------------------------
# kafka-python (2.0.2: no idempotence, no transactions)


def kpy_conf(g, user):
    return {"bootstrap_servers": g.bootstrap, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM, "sasl_plain_username": user,
            "sasl_plain_password": password(user), "request_timeout_ms": 15000,
            "api_version_auto_timeout_ms": 10000}


def kpy_error(e):
    return f"{type(e).__name__}({getattr(e, 'errno', None)})"


def kpy_produce(g, user, topics, value):
    """Sends VALUE to each of TOPICS in turn with one producer: "ok" or the error per topic.

    kafka-python 2.0.2 reports a topic it may not Describe only when its Metadata request names
    other topics too (asked alone, the error fails the update and send() waits out
    max_block_ms): the producer's first topic is therefore one it may write."""
    from kafka import KafkaProducer
    p = KafkaProducer(acks="all", retries=0, max_block_ms=15000, **kpy_conf(g, user))
    out = []
    try:
        for t in topics:
            try:
                p.send(t, value.encode()).get(20)
                out.append("ok")
            except Exception as e:  # the library's error class is the result
                out.append(kpy_error(e))
    finally:
        p.close(10)
    return out


def kpy_consume(g, user, topic, group, value):
    """Reads TOPIC in GROUP until VALUE: "ok", or the error poll() raised."""
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest",
                      session_timeout_ms=10000, heartbeat_interval_ms=500, **kpy_conf(g, user))
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                batches = c.poll(timeout_ms=500)
            except Exception as e:
                return kpy_error(e)
            if any(r.value == value.encode() for rs in batches.values() for r in rs):
                return "ok"
        return "timed out"
    finally:
        c.close()


def kpy_topics(g, user):
    from kafka import KafkaConsumer
    c = KafkaConsumer(**kpy_conf(g, user))
    try:
        return sorted(set(c.topics()) & KNOWN_TOPICS)
    finally:
        c.close()


def kpy_cluster_call(g, user):
    """DescribeAcls (a cluster-level admin call) through kafka-python's own client and codec.
    Its admin client refuses the call before sending it, since the mock clusters (and so kgate)
    do not offer DescribeAcls; kgate decides on ACLs before forwarding, so the request is sent
    as is and the answer decoded by kafka-python."""
    import kafka.errors as Errors
    from kafka.client_async import KafkaClient
    from kafka.protocol.admin import DescribeAclsRequest_v0
    c = KafkaClient(**kpy_conf(g, user))
    try:
        node = c.least_loaded_node()

        def ready():
            c.poll(timeout_ms=100)
            return c.ready(node)
        wait_for(ready, 20, what="kafka-python connected and authenticated")
        f = c.send(node, DescribeAclsRequest_v0(resource_type=1, resource_name=None,
                                                 principal=None, host=None, operation=1,
                                                 permission_type=1))
        c.poll(future=f, timeout_ms=15000)
        assert f.is_done and f.succeeded(), f.exception
        return kpy_error(Errors.for_code(f.value.error_code)())
    finally:
        c.close()


KPY_CASES = {
    "alice produces pay.orders (prefixed allow), pay.audit (literal deny beats it), ops.logs "
    "(no binding)":
        (lambda g, t: kpy_produce(g, "alice", ["pay.orders", "pay.audit", "ops.logs"],
                               f"kpy-{t}"),
         ["ok", "TopicAuthorizationFailedError(29)", "TopicAuthorizationFailedError(29)"]),
    "bob produces ops.logs (wildcard topic), pay.orders (prefixed deny beats it)":
        (lambda g, t: kpy_produce(g, "bob", ["ops.logs", "pay.orders"], f"kpy-{t}"),
         ["ok", "TopicAuthorizationFailedError(29)"]),
    "alice lists": (lambda g, t: kpy_topics(g, "alice"), LISTED["alice"]),
    "bob lists": (lambda g, t: kpy_topics(g, "bob"), LISTED["bob"]),
    "alice consumes in ga-* (prefixed group)":
        (lambda g, t: kpy_consume(g, "alice", "pay.orders", f"ga-{t}", f"kpy-{t}"), "ok"),
    "alice consumes in gz-* (no binding)":
        (lambda g, t: kpy_consume(g, "alice", "pay.orders", f"gz-{t}", f"kpy-{t}"),
         "GroupAuthorizationFailedError(30)"),
    "bob consumes in gb-* (wildcard group)":
        (lambda g, t: kpy_consume(g, "bob", "ops.logs", f"gb-{t}", f"kpy-{t}"), "ok"),
    "bob consumes in gx-* (prefixed deny beats the wildcard)":
        (lambda g, t: kpy_consume(g, "bob", "ops.logs", f"gx-{t}", f"kpy-{t}"),
         "GroupAuthorizationFailedError(30)"),
    "alice DescribeAcls (no Describe on the cluster)":
        (lambda g, t: kpy_cluster_call(g, "alice"), "ClusterAuthorizationFailedError(31)"),
}


def test_kafka_python(mixed, side):
    before = mixed.denials()
    assert_answers(mixed, side, KPY_CASES)
    assert mixed.denials() > before


# ---------------------------------------------------------------------------------------------
# KafkaJS (kafkajs_acl.cjs)


def run_node(script, bootstrap, mechanism, steps, timeout=240):
    modules = os.path.join(kghelpers.INTEGRATION_DIR, "node_modules")
    if not os.path.isdir(modules):
        pytest.fail("tests/integration/node_modules missing: run scripts/test-setup")
    cp = run(["node", os.path.join(NODE_DIR, script),
              json.dumps({"bootstrap": bootstrap, "mechanism": mechanism, "steps": steps})],
             timeout=timeout)
    results = json.loads(cp.stdout.decode().strip().splitlines()[-1])
    assert len(results) == len(steps)
    return results


def step(op, user, **kw):
    return {"op": op, "user": user, "password": password(user), **kw}


def node_outcome(result):
    """The listed topics (of this module's), the step's value, or the error as "CLASS
    KAFKA_ERROR(code)..." (what the library reported, from the script's describe())."""
    if "ok" in result:
        ok = result["ok"]
        return sorted(set(ok) & KNOWN_TOPICS) if isinstance(ok, list) else ok
    e = result["error"]
    return " ".join([e["class"], *e["kafka_errors"]])


def node_answers(script, g, active, mechanism, cases):
    """assert_answers for a Node client: CASES ({name: (step for a tag, expected outcome)})
    run in one SCRIPT process."""
    g.use(active)
    t = tag()
    names = list(cases)
    results = run_node(script, g.bootstrap, mechanism, [cases[n][0](t) for n in names])
    got = {n: node_outcome(r) for n, r in zip(names, results)}
    assert got == {n: cases[n][1] for n in names}, results
    assert g.active() == active


def produce_and_list_cases(prefix, written, refused_write, refused_describe):
    """The cases of every Node client: produce allowed (WRITTEN: what the step returns), refused
    on a topic the user may Describe (REFUSED_WRITE: Produce refused) or may not
    (REFUSED_DESCRIBE: Metadata refused first), and both users' listings."""
    return {
        "alice produces pay.orders (prefixed allow)":
            (lambda t: step("produce", "alice", topic="pay.orders", value=f"{prefix}-{t}"),
             written),
        "alice produces pay.audit (literal deny beats the prefixed allow)":
            (lambda t: step("produce", "alice", topic="pay.audit", value="x"), refused_write),
        "alice produces ops.logs (no binding)":
            (lambda t: step("produce", "alice", topic="ops.logs", value="x"), refused_describe),
        "bob produces ops.logs (wildcard topic)":
            (lambda t: step("produce", "bob", topic="ops.logs", value=f"{prefix}-{t}"), written),
        "bob produces pay.orders (prefixed deny beats the wildcard)":
            (lambda t: step("produce", "bob", topic="pay.orders", value="x"), refused_describe),
        "alice lists": (lambda t: step("topics", "alice"), LISTED["alice"]),
        "bob lists": (lambda t: step("topics", "bob"), LISTED["bob"]),
    }


KAFKAJS_CASES = {
    **produce_and_list_cases("js", 1, "KafkaJSProtocolError TOPIC_AUTHORIZATION_FAILED(29)",
                             "KafkaJSProtocolError TOPIC_AUTHORIZATION_FAILED(29)"),
    "alice consumes in ga-* (prefixed group)":
        (lambda t: step("consume", "alice", topic="pay.orders", group=f"ga-{t}",
                        value=f"js-{t}"), "read"),
    # KafkaJS asks every broker in turn for the coordinator and, when all refuse, reports that
    # none was found: FindCoordinator's GROUP_AUTHORIZATION_FAILED is not surfaced.
    "alice consumes in gz-* (no binding: FindCoordinator refused)":
        (lambda t: step("consume", "alice", topic="pay.orders", group=f"gz-{t}",
                        value=f"js-{t}"), "KafkaJSGroupCoordinatorNotFound"),
    "bob consumes in gb-* (wildcard group)":
        (lambda t: step("consume", "bob", topic="ops.logs", group=f"gb-{t}", value=f"js-{t}"),
         "read"),
    # Read on `*` implies Describe, which the deny of Read leaves: JoinGroup is what is refused.
    "bob consumes in gx-* (prefixed deny beats the wildcard: JoinGroup refused)":
        (lambda t: step("consume", "bob", topic="ops.logs", group=f"gx-{t}", value=f"js-{t}"),
         "KafkaJSProtocolError GROUP_AUTHORIZATION_FAILED(30)"),
    # Same as for groups: FindCoordinator's refusal shows as "not found".
    "alice transactional id tx-other (no binding: FindCoordinator refused)":
        (lambda t: step("transaction", "alice", topic="pay.orders", value="x",
                        transactional_id=f"tx-other-{t}"), "KafkaJSGroupCoordinatorNotFound"),
    "alice transactional id tx-ro-* (Describe only: InitProducerId refused)":
        (lambda t: step("transaction", "alice", topic="pay.orders", value="x",
                        transactional_id=f"tx-ro-{t}"),
         "KafkaJSProtocolError TRANSACTIONAL_ID_AUTHORIZATION_FAILED(53)"),
    "alice transactional id tx-alice-* (Write on it and on pay.*)":
        (lambda t: step("transaction", "alice", topic="pay.orders", value=f"js-txn-{t}",
                        transactional_id=f"tx-alice-{t}"), "committed"),
}


def test_kafkajs(mixed, side):
    """KafkaJS's idempotent producer is left out: it asks the controller for its producer id,
    and the mock clusters name a controller (node 0) that does not exist."""
    node_answers("kafkajs_acl.cjs", mixed, side, MECHANISM.lower(), KAFKAJS_CASES)


# ---------------------------------------------------------------------------------------------
# kcat (librdkafka 2.0.2): produce, its metadata listing (-L) and a balanced consumer (-G)


def kcat(g, user, *args, input=None):
    """kcat as USER: (exit code, stdout, stderr)."""
    sasl = [a for k, v in librdkafka_sasl(MECHANISM, user, password(user)).items()
            for a in ("-X", f"{k}={v}")]
    cp = run(["kcat", "-b", g.bootstrap, *sasl, *args], timeout=90, check=False,
             input=input.encode() if input else None)
    return cp.returncode, cp.stdout.decode(), cp.stderr.decode()


def kcat_produce(g, user, topic, value):
    rc, _, err = kcat(g, user, "-P", "-t", topic, "-X", "acks=all", input=value + "\n")
    if rc == 0:
        return "ok"
    return sorted(set(re.findall(r"Delivery failed for message: (.*)", err))) or err[-500:]


def kcat_metadata(g, user, topic=None):
    """-L -J: this module's topics, or for a named TOPIC its error."""
    rc, out, err = kcat(g, user, "-L", "-J", *(["-t", topic] if topic else []))
    assert rc == 0, err
    topics = json.loads(out)["topics"]
    if topic:
        return [t.get("error") for t in topics if t["topic"] == topic]
    return sorted({t["topic"] for t in topics if not t.get("error")} & KNOWN_TOPICS)


def kcat_group(g, user, topic, group):
    """-G: "ok" once one record is read, else the consumer errors kcat printed (it exits on
    the first)."""
    rc, out, err = kcat(g, user, "-G", group, "-X", "auto.offset.reset=earliest", "-c", "1",
                        "-q", "-f", "%s\n", topic)
    if rc == 0 and out.strip():
        return "ok"
    return sorted(set(re.findall(r"Consumer error: (.*)", err))) or err[-500:]


KCAT_CASES = {
    "alice produces pay.orders (prefixed allow)":
        (lambda g, t: kcat_produce(g, "alice", "pay.orders", f"kcat-{t}"), "ok"),
    "alice produces pay.audit (literal deny beats the prefixed allow)":
        (lambda g, t: kcat_produce(g, "alice", "pay.audit", "x"),
         ["Broker: Topic authorization failed"]),
    "bob produces ops.logs (wildcard topic)":
        (lambda g, t: kcat_produce(g, "bob", "ops.logs", f"kcat-{t}"), "ok"),
    "alice lists": (lambda g, t: kcat_metadata(g, "alice"), LISTED["alice"]),
    "bob lists": (lambda g, t: kcat_metadata(g, "bob"), LISTED["bob"]),
    "carol lists (User:* only)": (lambda g, t: kcat_metadata(g, "carol"), ["pub.news"]),
    "alice asks for ops.logs (no binding)":
        (lambda g, t: kcat_metadata(g, "alice", "ops.logs"),
         ["Broker: Topic authorization failed"]),
    "bob consumes in gb-* (wildcard group)":
        (lambda g, t: kcat_group(g, "bob", "ops.logs", f"gb-{t}"), "ok"),
    "bob consumes in gx-* (prefixed deny beats the wildcard)":
        (lambda g, t: kcat_group(g, "bob", "ops.logs", f"gx-{t}"),
         ["JoinGroup failed: Broker: Group authorization failed"]),
}


def test_kcat(mixed, side):
    assert_answers(mixed, side, KCAT_CASES)


# ---------------------------------------------------------------------------------------------
# librdkafka 2.0.2 (confluent-kafka): what test_acl_enforcement.py leaves out, idempotence and
# transactions


def ck_conf(g, user):
    return {"bootstrap.servers": g.bootstrap, **librdkafka_sasl(MECHANISM, user, password(user))}


def ck_idempotent(g, user, topic, value):
    """"ok" when the one message is acknowledged, else "fatal NAME" / the delivery error."""
    from confluent_kafka import KafkaException, Producer
    errors, delivered = [], []
    p = Producer({**ck_conf(g, user), "enable.idempotence": True, "error_cb": errors.append,
                  "message.timeout.ms": 30000})
    p.produce(topic, value.encode(), on_delivery=lambda e, m: delivered.append(e))
    try:
        p.flush(45)
    except KafkaException as e:  # confluent-kafka raises a fatal error from flush()
        errors.append(e.args[0])
    fatal = [e for e in errors if e.fatal()]
    if fatal:
        return f"fatal {fatal[0].name()}"
    assert len(delivered) == 1, (delivered, errors)
    return "ok" if delivered[0] is None else delivered[0].name()


def ck_transaction(g, user, transactional_id, topic, value, timeout_ms=30000):
    """Init, begin, produce one message, commit: "committed", or the error's name."""
    from confluent_kafka import KafkaException, Producer
    p = Producer({**ck_conf(g, user), "transactional.id": transactional_id,
                  "transaction.timeout.ms": timeout_ms})
    try:
        p.init_transactions(timeout_ms / 1000 + 15)
        p.begin_transaction()
        p.produce(topic, value.encode())
        p.commit_transaction(timeout_ms / 1000 + 15)
        return "committed"
    except KafkaException as e:
        return e.args[0].name()


CK_CASES = {
    "alice idempotent (Write on pay.* implies IdempotentWrite)":
        (lambda g, t: ck_idempotent(g, "alice", "pay.orders", f"ck-{t}"), "ok"),
    "bob idempotent (IdempotentWrite on the cluster)":
        (lambda g, t: ck_idempotent(g, "bob", "ops.logs", f"ck-{t}"), "ok"),
    "carol idempotent (no Write that no deny covers)":
        (lambda g, t: ck_idempotent(g, "carol", "pub.news", f"ck-{t}"),
         "fatal CLUSTER_AUTHORIZATION_FAILED"),
    "alice transactional id tx-alice-* (Write on it and on pay.*)":
        (lambda g, t: ck_transaction(g, "alice", f"tx-alice-{t}", "pay.orders", f"ck-txn-{t}"),
         "committed"),
    "alice transactional id tx-other-* (no binding: FindCoordinator refused)":
        (lambda g, t: ck_transaction(g, "alice", f"tx-other-{t}", "pay.orders", "x"),
         "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"),
    "alice transactional id tx-ro-* (Describe only: InitProducerId refused)":
        (lambda g, t: ck_transaction(g, "alice", f"tx-ro-{t}", "pay.orders", "x"),
         "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"),
}


def test_librdkafka_202_idempotence_and_transactions(mixed, side):
    assert_answers(mixed, side, CK_CASES)


def test_denied_group_error_names_the_reason(mixed):
    """librdkafka 2.0.2 reports the code (GROUP_AUTHORIZATION_FAILED) with its words: kgate's
    FindCoordinator answer has no message of its own (null), as a broker's."""
    from confluent_kafka import Consumer
    c = Consumer({**ck_conf(mixed, "alice"), "group.id": f"gz-{tag()}"})
    try:
        c.subscribe(["pay.orders"])
        error = wait_for(lambda: (lambda m: m.error() if m and m.error() else None)(c.poll(0.5)),
                         30, what="the consumer's error")
    finally:
        c.close()
    assert error.name() == "GROUP_AUTHORIZATION_FAILED"
    assert "authorization failed" in error.str().lower(), error.str()


# ---------------------------------------------------------------------------------------------
# librdkafka 2.12 (build/deps/rdk-client-2.12)


def rdk(g, user, mode, *args):
    """rdk-client MODE as USER: (its JSON line, its stderr)."""
    if not os.access(RDK_CLIENT, os.X_OK):
        pytest.fail(f"{RDK_CLIENT} missing: run scripts/test-setup")
    xs = [a for k, v in librdkafka_sasl(MECHANISM, user, password(user)).items()
          for a in ("-X", f"{k}={v}")]
    cp = run([RDK_CLIENT, mode, "-b", g.bootstrap, *args, *xs], timeout=120, check=False)
    assert cp.returncode in (0, 1), (cp.returncode, cp.stderr[-3000:])
    return json.loads(cp.stdout.decode().strip().splitlines()[-1]), cp.stderr.decode()


def rdk_produce(g, user, topic, value, *xs):
    out, err = rdk(g, user, "produce", "-t", topic, "-n", "1", "-p", value, *xs)
    assert out["version"].startswith("2.12.")
    if out["acked"] == 1:
        return "ok"
    fatal = re.search(r"Fatal error: (Broker: [^:]+)", err)
    return f"fatal {fatal.group(1)}" if fatal else out["first_error"]


def rdk_consume(g, user, topic, group, seconds):
    """"ok" once one record is read in GROUP, else the distinct errors the consumer printed
    within SECONDS."""
    out, err = rdk(g, user, "consume", "-t", topic, "-g", group, "-n", "1", "-s", str(seconds))
    if out["records"]:
        return "ok"
    return sorted(set(re.findall(r"rdk-client: consume: (.*)", err)))


RDK_DENIED = "Broker: Topic authorization failed"
RDK_CASES = {
    "alice produces pay.orders (prefixed allow)":
        (lambda g, t: rdk_produce(g, "alice", "pay.orders", t), "ok"),
    "alice produces pay.audit (literal deny beats the prefixed allow)":
        (lambda g, t: rdk_produce(g, "alice", "pay.audit", t), RDK_DENIED),
    "alice produces ops.logs (no binding)":
        (lambda g, t: rdk_produce(g, "alice", "ops.logs", t), RDK_DENIED),
    "bob produces pay.orders (prefixed deny beats the wildcard)":
        (lambda g, t: rdk_produce(g, "bob", "pay.orders", t), RDK_DENIED),
    "alice idempotent (Write on pay.* implies IdempotentWrite)":
        (lambda g, t: rdk_produce(g, "alice", "pay.orders", t, "-X", "enable.idempotence=true"),
         "ok"),
    "carol idempotent (no Write that no deny covers)":
        (lambda g, t: rdk_produce(g, "carol", "pub.news", t, "-X", "enable.idempotence=true"),
         "fatal Broker: Cluster authorization failed"),
    "bob idempotent (IdempotentWrite on the cluster)":
        (lambda g, t: rdk_produce(g, "bob", "ops.logs", t, "-X", "enable.idempotence=true"),
         "ok"),
    "bob consumes in gb-* (wildcard group)":
        (lambda g, t: rdk_consume(g, "bob", "ops.logs", f"gb-{t}", 60), "ok"),
    # a bounded wait for an error that comes at the first JoinGroup, not a timing check
    "bob consumes in gx-* (prefixed deny beats the wildcard)":
        (lambda g, t: rdk_consume(g, "bob", "ops.logs", f"gx-{t}", 10),
         ["JoinGroup failed: Broker: Group authorization failed"]),
}


def test_librdkafka_212_client(mixed, side):
    assert_answers(mixed, side, RDK_CASES)


# ---------------------------------------------------------------------------------------------
# @platformatic/kafka (platformatic_acl.mjs) on the 2.12/2.12 virtual cluster: its consumer
# needs OffsetFetch v8+ and FindCoordinator v4+, which no mock cluster serves, so producing,
# listing and the idempotent producer's InitProducerId are what it can show.

PLATFORMATIC_CASES = {
    **produce_and_list_cases("pf", 1, "PLT_KFK_MULTIPLE TOPIC_AUTHORIZATION_FAILED(29)",
                             "PLT_KFK_RESPONSE TOPIC_AUTHORIZATION_FAILED(29)"),
    # The allowed InitProducerId is left out: the mock answers this client's v4 request
    # UNKNOWN_PRODUCER_ID whatever kgate decides.
    "carol idempotent (no Write that no deny covers)":
        (lambda t: step("idempotent", "carol", topic="pub.news", value="x"),
         "PLT_KFK_RESPONSE CLUSTER_AUTHORIZATION_FAILED(31)"),
}


def test_platformatic(modern, modern_side):
    node_answers("platformatic_acl.mjs", modern, modern_side, MECHANISM, PLATFORMATIC_CASES)
