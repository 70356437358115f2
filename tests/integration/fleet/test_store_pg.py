"""The state store on a real PostgreSQL 15: the store's unit tests (tests/unit/test_store.c)
run against it, schema migrations with concurrent starters, version refusal, bad passwords."""

import os
import subprocess

import pytest

from pgserver import PASSWORD, PASSWORD_ROLE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
UNIT_BIN = os.environ.get("KGATE_STORE_UNIT_BIN", os.path.join(ROOT, "build", "tests",
                                                               "test_store"))


def test_store_unit_tests_pass_on_postgres(pg_url):
    """The very unit tests `make unit` runs on SQLite, each against its own fresh database."""
    if not os.path.exists(UNIT_BIN):
        subprocess.run(["make", "-C", ROOT, UNIT_BIN], check=True, capture_output=True)
    r = subprocess.run([UNIT_BIN], env={**os.environ, "KGATE_TEST_STORE": pg_url},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert " 0 failed" in out
    # It really ran on PostgreSQL (the store logs where it is at open).
    assert "store: PostgreSQL postgresql://kgate@127.0.0.1" in out
