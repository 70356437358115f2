"""A librdkafka 2.12 client (build/deps/rdk-client-2.12) through kgate: the modern protocol
versions (Produce v10+, Fetch v16, Metadata v12 where the broker has them), produce and a group
consume with commit and restart."""

import json
import os
import uuid

import pytest

from kghelpers import ROOT, run

RDK_CLIENT = os.path.join(ROOT, "build", "deps", "rdk-client-2.12")


def rdk_client(*args, timeout=120):
    if not os.access(RDK_CLIENT, os.X_OK):
        pytest.fail(f"{RDK_CLIENT} missing: run scripts/test-setup")
    cp = run([RDK_CLIENT] + list(args), timeout=timeout, check=False)
    assert cp.returncode == 0, (cp.returncode, cp.stdout[-2000:], cp.stderr[-3000:])
    return json.loads(cp.stdout.decode())


def test_librdkafka_212_client_produce_group_consume_restart(kgate):
    group = "rdk212-" + uuid.uuid4().hex[:8]
    out = rdk_client("produce", "-b", kgate.bootstrap, "-t", "t6", "-n", "2000", "-p", "a")
    assert out["version"].startswith("2.12.") and out["acked"] == 2000

    first = rdk_client("consume", "-b", kgate.bootstrap, "-t", "t6", "-g", group, "-n", "2000")
    assert first["commit"] == "NO_ERROR"
    assert sorted(v for _, _, v in first["records"]) == sorted(f"a-{i}" for i in range(2000))
    assert len({(p, o) for p, o, _ in first["records"]}) == 2000

    rdk_client("produce", "-b", kgate.bootstrap, "-t", "t6", "-n", "300", "-p", "b")
    second = rdk_client("consume", "-b", kgate.bootstrap, "-t", "t6", "-g", group, "-n", "300")
    assert sorted(v for _, _, v in second["records"]) == sorted(f"b-{i}" for i in range(300)), \
        "the restarted member did not resume exactly at the committed offsets"
