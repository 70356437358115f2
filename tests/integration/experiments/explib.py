"""Helpers for the experiment tests: an application that produces (and consumes and commits)
continuously in background threads, and the experiment API / CLI seen from a user's side.

The application records what it saw itself (acknowledgements, delivery errors, commits, records
read, each with its wall-clock time), so the tests can hold kgate's measurements against the
client's own view (count_in_window).
"""

import datetime
import json
import os
import subprocess
import threading
import time
import urllib.request

from confluent_kafka import KafkaError, KafkaException

from chaoslib import consumer, producer
from kghelpers import wait_for

ENDED = ("completed", "aborted", "stopped", "interrupted")
REPORT_SECTIONS = ["## 1. Hypothesis", "## 2. Test configuration", "## 3. Observed behaviour",
                   "## 4. Delta from expected", "## 5. Remediation", "## 6. Re-test result"]


# ---------------------------------------------------------------------------------------------
# The application under test


class Delivery:
    """One message: monotonic send/ack times (.sent, .acked) for waits, wall-clock ones
    (.sent_at, .acked_at, time.time()) to compare with the times in kgate's records."""
    __slots__ = ("value", "sent", "acked", "error", "sent_at", "acked_at")

    def __init__(self, value, sent):
        self.value = value
        self.sent = sent
        self.sent_at = time.time()
        self.acked = None
        self.acked_at = None
        self.error = None

    @property
    def span(self):
        """(sent, answered) in wall-clock seconds; the request reached kgate in between."""
        return (self.sent_at, self.acked_at)


class ProducerApp:
    """Produces to TOPIC until stopped: asynchronously at about RATE messages per second, or
    (sync=True) one message at a time, waiting for each acknowledgement, as an application
    doing synchronous sends does (pausing PAUSE seconds between messages). Every message is a
    Delivery (monotonic send/ack times)."""

    def __init__(self, bootstrap, topic, client_id="exp-app", rate=100, sync=False, pause=0.0,
                 **conf):
        self.topic = topic
        self.rate = rate
        self.sync = sync
        self.pause = pause
        self.producer = producer(bootstrap, client_id=client_id, **conf)
        self.deliveries = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.failure = None

    def _on_delivery(self, d):
        def report(err, msg):
            d.acked = time.monotonic()
            d.acked_at = time.time()
            d.error = err
        return report

    def _send_one(self, i):
        d = Delivery(f"{self.topic}-{i:07d}".encode(), time.monotonic())
        with self.lock:
            self.deliveries.append(d)
        self.producer.produce(self.topic, d.value, on_delivery=self._on_delivery(d))
        return d

    def _run(self):
        i = 0
        try:
            while not self.stopping.is_set():
                d = self._send_one(i)
                i += 1
                if self.sync:
                    while d.acked is None and not self.stopping.is_set():
                        self.producer.poll(0.05)
                    if self.pause:
                        time.sleep(self.pause)
                else:
                    self.producer.poll(0)
                    time.sleep(1.0 / self.rate)
            self.producer.flush(60)
        except Exception as e:  # reported by stop()
            self.failure = e

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(90)
        assert not self.thread.is_alive(), "the producer thread did not finish"
        self.producer = None  # its librdkafka threads go now, not whenever Python collects it
        assert self.failure is None, f"the producer thread failed: {self.failure!r}"

    def snapshot(self):
        with self.lock:
            return list(self.deliveries)

    def acked_ok(self, sent_after=None):
        return [d for d in self.snapshot() if d.acked is not None and d.error is None
                and (sent_after is None or d.sent > sent_after)]

    def errors(self):
        return [d for d in self.snapshot() if d.error is not None]

    def wait_acked(self, n, timeout=60, sent_after=None, what="acknowledged messages"):
        return wait_for(lambda: len(self.acked_ok(sent_after)) >= n, timeout, 0.05,
                        f"{n} {what} on {self.topic}")


class ConsumerApp:
    """A consumer group member reading TOPIC and committing what it read every COMMIT_EVERY
    seconds (synchronous commits, as an application that commits after processing does)."""

    def __init__(self, bootstrap, topic, group, client_id="exp-consumer", commit_every=0.25):
        self.consumer = consumer(bootstrap, group=group, client_id=client_id)
        self.topic = topic
        self.commit_every = commit_every
        self.consumed = 0
        self.commits = 0
        self.commit_spans = []  # (started, returned) wall-clock seconds of each sent commit
        self.commit_errors = []
        self.read_at = []  # wall-clock time of each record read
        self.values = []  # the values read, in order
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.failure = None

    def _commit(self):
        started = time.time()
        try:
            self.consumer.commit(asynchronous=False)
            self.commits += 1
        except KafkaException as e:
            if e.args[0].code() == KafkaError._NO_OFFSET:
                return  # nothing to commit: no request was sent
            self.commit_errors.append(e.args[0])
        self.commit_spans.append((started, time.time()))

    def _run(self):
        try:
            self.consumer.subscribe([self.topic])
            uncommitted = 0
            last_commit = time.monotonic()
            while not self.stopping.is_set():
                for m in self.consumer.consume(100, 0.1):
                    if m.error() is None:
                        self.consumed += 1
                        self.read_at.append(time.time())
                        self.values.append(m.value())
                        uncommitted += 1
                if uncommitted and time.monotonic() - last_commit >= self.commit_every:
                    self._commit()
                    uncommitted = 0
                    last_commit = time.monotonic()
            self.consumer.close()
        except Exception as e:  # reported by stop()
            self.failure = e

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the consumer thread did not finish"
        assert self.failure is None, f"the consumer thread failed: {self.failure!r}"


# ---------------------------------------------------------------------------------------------
# kgate's figures against the client's own counts


def wall(iso):
    """Wall-clock seconds of a time in kgate's records ("2025-01-02T03:04:05.678Z")."""
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# kgate stamps each observation with its clock read just before it reads its counters, truncated
# to the millisecond, so a window's true edge lies after its stamp by up to EDGE_SLACK: 1 ms of
# truncation, the rest for the accept thread being descheduled between the two reads on a busy
# machine. The tests' clients pace their requests (milliseconds apart), so this is a tolerance
# of a few requests at each edge.
EDGE_SLACK = 0.05


def count_in_window(spans, start, end, end_latest=None):
    """(surely, possibly): how many of SPANS ((sent, answered) wall-clock seconds; answered None
    when no answer came) must and may have reached kgate within the window kgate stamped
    [START, END]. A request reaches kgate between its send and its answer, and the window's
    true edges lie up to EDGE_SLACK after the stamps. END_LATEST: the latest time the window
    may really have ended (a run's final observation is stamped with the time of the tick
    before it)."""
    end_latest = (end if end_latest is None else end_latest) + EDGE_SLACK
    surely = sum(1 for s, a in spans if a is not None and s >= start + EDGE_SLACK and a <= end)
    possibly = sum(1 for s, a in spans if (a is None or a >= start) and s <= end_latest)
    return surely, possibly


def assert_counted(name, figure, spans, start, end, end_latest=None):
    """kgate's FIGURE (the requests of one client it counted over a window) agrees with the
    client's own SPANS (count_in_window)."""
    surely, possibly = count_in_window(spans, start, end, end_latest)
    assert surely <= figure <= possibly, (
        f"kgate counted {name} = {figure}; the client's own count in the window: at least "
        f"{surely}, at most {possibly}")


# ---------------------------------------------------------------------------------------------
# Experiment API


def start_experiment(gate, drill):
    status, body = gate.request("POST", "/v1/experiments", drill)
    assert status == 201, f"POST /v1/experiments -> {status} {body}"
    assert isinstance(body, dict) and body.get("id"), body
    return body


def get_experiment(gate, exp_id, seconds=None):
    path = f"/v1/experiments/{exp_id}" + (f"?seconds={seconds}" if seconds is not None else "")
    status, body = gate.request("GET", path)
    assert status == 200, f"GET {path} -> {status} {body}"
    return body


def wait_status(gate, exp_id, statuses, timeout=60):
    """The record once its status is one of STATUSES."""
    holder = {}

    def reached():
        holder["rec"] = get_experiment(gate, exp_id)
        return holder["rec"]["status"] in statuses

    try:
        wait_for(reached, timeout, 0.2, f"experiment {exp_id} to reach {statuses}")
    except AssertionError as e:
        rec = holder.get("rec") or {}
        raise AssertionError(f"{e}; last status {rec.get('status')}, end_reason "
                             f"{rec.get('end_reason')}") from None
    return holder["rec"]


def wait_ended(gate, exp_id, timeout=60):
    """The final record; .seen_at in it: wall-clock time by which it had ended (the final
    observation was taken before)."""
    rec = wait_status(gate, exp_id, ENDED, timeout)
    rec["seen_at"] = time.time()
    return rec


def report_json(gate, exp_id):
    status, body = gate.request("GET", f"/v1/experiments/{exp_id}/report?format=json")
    assert status == 200, f"report {exp_id} -> {status} {body}"
    assert isinstance(body, dict), body
    return body


def report_md(gate, exp_id):
    """(content type, text) of the Markdown report."""
    url = f"{gate.admin}/v1/experiments/{exp_id}/report?format=md"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return resp.headers.get("Content-Type", ""), resp.read().decode()


def audit_entries(gate):
    status, body = gate.request("GET", "/v1/audit?after=0&limit=1000")
    assert status == 200, body
    return body["entries"]


def audit_of(gate, exp_id, kind):
    """Audit entries of type KIND that name the experiment EXP_ID."""
    return [e for e in audit_entries(gate)
            if e["type"] == kind and exp_id in json.dumps(e.get("details"))]


def rule_ids(gate):
    return [r["id"] for r in gate.rules()]


def base_drill(name, **fields):
    drill = {"name": name, "hypothesis": f"{name}: the application keeps working",
             "vcluster": "default", "duration": "5s", "baseline": "2s"}
    drill.update(fields)
    return drill


# ---------------------------------------------------------------------------------------------
# CLI


def cli(gate, *args, timeout=120, check=False):
    """Runs `kgate experiment ARGS -c CONFIG`; returns the CompletedProcess (text)."""
    argv = [gate.kgate_bin, "experiment", *args, "-c", gate.config_path]
    try:
        cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout, text=True)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(argv)} did not finish within {timeout}s; stderr:\n"
                             f"{e.stderr}") from None
    if check:
        assert cp.returncode == 0, (f"{' '.join(argv)} exited {cp.returncode}; stdout:\n"
                                    f"{cp.stdout[-2000:]}\nstderr:\n{cp.stderr[-2000:]}")
    return cp


def write_file(directory, name, text):
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(text)
    return path
