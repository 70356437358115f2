"""What every Python driver of the failover tests shares: its JSON argument, the event stream on
stdout (one JSON object per line, see fohelpers.py), and running its producer and consumer loops
until stdin closes or SIGTERM (the test stops a driver either way)."""

import json
import signal
import sys
import threading

ARGS = json.loads(sys.argv[1])
STOP = threading.Event()
_OUT = threading.Lock()  # one whole line per event, whichever thread emits it


def emit(**event):
    with _OUT:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def _wait_for_stdin_eof():
    sys.stdin.read()
    STOP.set()


def run(*loops):
    """Runs every loop in its own thread until all of them returned (they return once STOP is
    set). The main thread only joins with a timeout, so it stays free to handle SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    threading.Thread(target=_wait_for_stdin_eof, daemon=True).start()
    threads = [threading.Thread(target=loop) for loop in loops]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.2)
