"""kcat driver of the failover tests: a loop of `kcat -P` runs, one message each (the next one
after the previous one's delivery report), and one long-running `kcat -G` consumer group
member. kcat runs with its defaults plus -E (keep running on non-fatal errors, as a
long-lived kcat pipeline would) and, for the group, auto.offset.reset=earliest and a short
session timeout. Events on stdout: see fohelpers.py.
Runs until stdin closes or SIGTERM.

Usage: kcat_driver.py '{"bootstrap": ..., "topic": ..., "group": ..., "run": ..., "interval_ms": N}'
"""

import re
import subprocess
import sys
import threading
import time

from driverlib import ARGS, STOP, emit, run

DELIVERED = re.compile(r"Message delivered to partition (-?\d+) \(offset (-?\d+)\)")
FAILED = re.compile(r"Delivery failed for message: (.*)")
COMMON = ["-b", ARGS["bootstrap"], "-E", "-X", "broker.address.family=v4"]


def relay_stderr(name, stream):
    """Copies a kcat's stderr to ours (the test shows it when something fails)."""
    for raw in stream:
        sys.stderr.write(f"[{name}] {raw.decode('utf-8', 'replace')}")
        sys.stderr.flush()


def produce_one(seq):
    """One `kcat -P` run producing message seq; returns ("ack", partition, offset) or
    ("nack", error, None)."""
    kcat = subprocess.run(["kcat", "-P", "-vvv", "-t", ARGS["topic"], "-K", "|"] + COMMON,
                          input=f"{seq}|{ARGS['run']}:{seq}\n".encode(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    err = kcat.stderr.decode("utf-8", "replace")
    for line in err.splitlines():
        sys.stderr.write(f"[producer {seq}] {line}\n")
    ok = DELIVERED.search(err)
    if kcat.returncode == 0 and ok:
        return ("ack", int(ok.group(1)), int(ok.group(2)))
    bad = FAILED.search(err)
    return ("nack", bad.group(1) if bad else f"kcat exited {kcat.returncode}", None)


def produce_loop():
    """kcat -P reads its input in large blocks, so a long-running kcat fed a line at a time does
    not produce it until more input or EOF arrives: every message is its own kcat run, the way
    shell scripts use kcat."""
    interval = ARGS["interval_ms"] / 1000.0
    seq = 0
    while not STOP.is_set():
        emit(ev="sent", seq=seq, t=time.time())
        kind, a, b = produce_one(seq)
        if kind == "ack":
            emit(ev="ack", seq=seq, t=time.time(), p=a, o=b)
        else:
            emit(ev="nack", seq=seq, t=time.time(), err=a)
        seq += 1
        STOP.wait(interval)


def consume_loop():
    kcat = subprocess.Popen(["kcat", "-G", ARGS["group"], "-u", "-f", "%p %o %s\\n",
                             "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000"]
                            + COMMON + [ARGS["topic"]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    threading.Thread(target=relay_stderr, args=("consumer", kcat.stderr), daemon=True).start()
    threading.Thread(target=lambda: (STOP.wait(), kcat.poll() is None and kcat.terminate()),
                     daemon=True).start()
    prefix = ARGS["run"] + ":"
    for raw in kcat.stdout:
        parts = raw.decode("utf-8", "replace").rstrip("\n").split(" ", 2)
        if len(parts) == 3 and parts[2].startswith(prefix):
            emit(ev="recv", seq=int(parts[2][len(prefix):]), t=time.time(), p=int(parts[0]),
                 o=int(parts[1]))
    rc = kcat.wait()
    if not STOP.is_set():
        emit(ev="log", msg=f"kcat consumer exited with {rc}", t=time.time())


def main():
    run(produce_loop, consume_loop)


if __name__ == "__main__":
    main()
