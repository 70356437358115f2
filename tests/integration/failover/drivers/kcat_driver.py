"""kcat driver of the failover tests: ONE long-running `kcat -P` producer fed one message at a
time through its stdin, and ONE long-running `kcat -G` consumer group member, both for the whole
run: the same two kcat processes (and their librdkafka clients) cross every switch, reconnecting
by themselves as a long-lived kcat pipeline would. They run with kcat's defaults plus -E (keep
running on non-fatal errors, as such a pipeline would), and for the group
auto.offset.reset=earliest and a short session timeout. Events on stdout: see fohelpers.py; the
pid of each kcat is announced once ({"ev": "client", ...}) so the test can check that both are
the same processes, alive, before and after every switch.

kcat 1.7 reads its input with fread() in blocks of 1024 bytes, so a line shorter than that sits in
its buffer until more input arrives. Every input line is therefore exactly LINE bytes: the key
("<seq>" padded with '-') fills it up, so each message is produced as soon as it is written.

Delivery reports: kcat -vvv prints "Message delivered to partition P (offset O)" for each message
without naming it. Its default partitioner (consistent_random) puts a keyed message on
crc32(key) % partitions, and with one produce request in flight per connection
(-X max.in.flight.requests.per.connection=1, the one setting beyond kcat's defaults on the
producer) librdkafka stores and reports a partition's messages in the order they were produced,
even when a switch makes it retry (with more in flight, a retried batch can land after a later
one, and reports could not be matched), so each report is matched with the oldest unreported
message of partition P; the test checks every matched partition/offset against the cluster. A report that cannot
be matched, or a "Delivery failed" report (it names no message, so no later report could be
matched reliably), is a fatal event. Either kcat exiting before the driver stops is a fatal event
(the test fails): nothing is ever restarted.

Usage: kcat_driver.py '{"bootstrap": ..., "topic": ..., "group": ..., "run": ..., "interval_ms": N,
                        "partitions": N}'
"""

import collections
import re
import subprocess
import sys
import threading
import time
import zlib

from driverlib import ARGS, STOP, client, emit, error, fatal, run

LINE = 1024
DELIVERED = re.compile(r"Message delivered to partition (-?\d+) \(offset (-?\d+)\)")
FAILED = re.compile(r"Delivery failed for message: (.*)")
COMMON = ["-b", ARGS["bootstrap"], "-E", "-X", "broker.address.family=v4"]


def input_line(seq):
    value = f"{ARGS['run']}:{seq}"
    key = str(seq)
    key += "-" * (LINE - len(key) - len(value) - 2)  # "|" and "\n"
    line = f"{key}|{value}\n".encode()
    assert len(line) == LINE
    return key, line


def stop_when_asked(proc):
    """At the end of the run: EOF to the producer (it flushes and exits 0), SIGTERM to the
    consumer (it leaves the group and exits)."""
    STOP.wait()
    if proc.poll() is not None:
        return
    if proc.stdin is None:
        proc.terminate()
        return
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.terminate()


def produce_loop():
    partitions = ARGS["partitions"]
    kcat = subprocess.Popen(["kcat", "-P", "-vvv", "-t", ARGS["topic"], "-K", "|",
                             "-X", "max.in.flight.requests.per.connection=1"] + COMMON,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    client("producer", pid=kcat.pid, ident=f"kcat-producer@{kcat.pid}")
    lock = threading.Lock()
    outstanding = collections.defaultdict(collections.deque)  # partition -> seqs, oldest first

    def read_reports():
        for raw in kcat.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            sys.stderr.write(f"[producer] {line}\n")
            ok = DELIVERED.search(line)
            bad = FAILED.search(line)
            if ok:
                p, o = int(ok.group(1)), int(ok.group(2))
                with lock:
                    seq = outstanding[p].popleft() if outstanding[p] else None
                if seq is None:
                    fatal("producer", f"kcat reported a delivery to partition {p} (offset {o}) "
                                      f"with no message outstanding there")
                    return
                emit(ev="ack", seq=seq, t=time.time(), p=p, o=o)
            elif bad:
                fatal("producer", f"kcat reported a failed delivery (it names no message): "
                                  f"{bad.group(1)}")
                return
            elif "ERROR" in line:
                error("producer", line)

    reports = threading.Thread(target=read_reports, daemon=True)
    reports.start()
    threading.Thread(target=stop_when_asked, args=(kcat,), daemon=True).start()
    interval = ARGS["interval_ms"] / 1000.0
    seq = 0
    while not STOP.is_set():
        if kcat.poll() is not None:
            fatal("producer", f"kcat -P (pid {kcat.pid}) exited with {kcat.returncode}")
            return
        key, line = input_line(seq)
        with lock:
            outstanding[zlib.crc32(key.encode()) % partitions].append(seq)
        emit(ev="sent", seq=seq, t=time.time())
        try:
            kcat.stdin.write(line)
            kcat.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as e:
            if STOP.is_set():
                break
            fatal("producer", f"writing to kcat -P (pid {kcat.pid}) failed: {e!r}; "
                              f"exit code {kcat.poll()}")
            return
        seq += 1
        STOP.wait(interval)
    rc = kcat.wait()
    reports.join(10)
    if rc != 0:
        fatal("producer", f"kcat -P exited with {rc} at the end of the run")


def consume_loop():
    kcat = subprocess.Popen(["kcat", "-G", ARGS["group"], "-u", "-f", "%p %o %s\\n",
                             "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000"]
                            + [a for k, v in ARGS.get("consumer_config", {}).items()
                               for a in ("-X", f"{k}={v}")]
                            + COMMON + [ARGS["topic"]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client("consumer", pid=kcat.pid, ident=f"kcat-consumer@{kcat.pid}")

    def relay_stderr():
        for raw in kcat.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            sys.stderr.write(f"[consumer] {line}\n")
            if "rebalanced" in line and "assigned" in line:
                emit(ev="joined", t=time.time())
            if "ERROR" in line:
                error("consumer", line)

    threading.Thread(target=relay_stderr, daemon=True).start()
    threading.Thread(target=stop_when_asked, args=(kcat,), daemon=True).start()
    prefix = ARGS["run"] + ":"
    for raw in kcat.stdout:
        parts = raw.decode("utf-8", "replace").rstrip("\n").split(" ", 2)
        if len(parts) == 3 and parts[2].startswith(prefix):
            emit(ev="recv", seq=int(parts[2][len(prefix):]), t=time.time(), p=int(parts[0]),
                 o=int(parts[1]))
    rc = kcat.wait()
    if not STOP.is_set():
        fatal("consumer", f"kcat -G (pid {kcat.pid}) exited with {rc}")


def main():
    run(producer=produce_loop, consumer=consume_loop)


if __name__ == "__main__":
    main()
