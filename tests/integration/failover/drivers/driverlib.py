"""What every Python driver of the failover tests shares: its JSON argument, the event stream on
stdout (one JSON object per line, see fohelpers.py), and running its producer and consumer loops
until stdin closes or SIGTERM (the test stops a driver either way).

Drivers never hide a failure: a loop that raises, or returns while the driver is still meant to
run, is reported as {"ev": "fatal", "role": ..., "err": ...} and the driver stops and exits 3.
A driver never replaces a client that died; the test fails on a fatal event (fohelpers.py)."""

import json
import os
import signal
import sys
import threading
import time
import traceback

ARGS = json.loads(sys.argv[1])
STOP = threading.Event()
FAILED = threading.Event()
_OUT = threading.Lock()  # one whole line per event, whichever thread emits it


def emit(**event):
    with _OUT:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def client(role, pid=None, ident=None):
    """Announces the one long-lived client of role (its process id: the driver's own for an
    in-process library client, the child's for kcat). A second announcement of a role means the
    client was replaced, which the test fails on."""
    emit(ev="client", role=role, pid=pid or os.getpid(), id=ident or f"{role}@{os.getpid()}",
         t=time.time())


def error(role, err):
    """A non-fatal error the library reported (it keeps going by itself); counted by the test."""
    emit(ev="error", role=role, err=str(err), t=time.time())


def fatal(role, err):
    """The client of role died for good: report it and stop the driver (exit code 3)."""
    emit(ev="fatal", role=role, err=str(err), t=time.time())
    FAILED.set()
    STOP.set()


def _wait_for_stdin_eof():
    sys.stdin.read()
    STOP.set()


def _guarded(role, loop):
    try:
        loop()
    except BaseException:  # noqa: B036 - every way out of a loop is reported
        fatal(role, "raised:\n" + traceback.format_exc())
        return
    if not STOP.is_set():
        fatal(role, "its loop returned while the driver was still running")


def run(**loops):
    """Runs every loop (role=function) in its own thread until all of them returned (they return
    once STOP is set). The main thread only joins with a timeout, so it stays free to handle
    SIGTERM. Exits 3 when any client died (a fatal event), else 0."""
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    threading.Thread(target=_wait_for_stdin_eof, daemon=True).start()
    threads = [threading.Thread(target=_guarded, args=(role, loop)) for role, loop in loops.items()]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.2)
    sys.stdout.flush()
    sys.exit(3 if FAILED.is_set() else 0)
