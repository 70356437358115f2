"""The state store's unit tests (tests/unit/test_store.c) against a real PostgreSQL 15: the
same binary `make unit` runs on SQLite, given KGATE_TEST_STORE=postgresql://..."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
# The unit test binary of the build under test (build/ or build-asan/, next to its kgate).
UNIT_BIN = os.environ.get("KGATE_STORE_UNIT_BIN") or os.path.join(
    os.path.dirname(os.environ.get("KGATE_BIN", os.path.join(ROOT, "build", "kgate"))), "tests",
    "test_store")


def test_store_unit_tests_pass_on_postgres(pg_url):
    """The very unit tests `make unit` runs on SQLite, each against its own fresh database."""
    assert os.path.exists(UNIT_BIN), f"{UNIT_BIN} is not built (make unit, or make integration)"
    r = subprocess.run([UNIT_BIN], env={**os.environ, "KGATE_TEST_STORE": pg_url},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert " 0 failed" in out
    # It really ran on PostgreSQL (the store logs where it is at open).
    assert "store: PostgreSQL postgresql://kgate@127.0.0.1" in out
