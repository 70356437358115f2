"""`make demo` (README quick start): `kgate demo` starts two dev clusters and kgate in front of
them, drives a producer and a consumer group through it, makes a planned failover and an
unplanned failback, and prints the measured table. The claims it prints are checked here:
the planned switch was made as planned and lost nothing, no client saw an error, and the
numbers of the table agree with each other."""

import re

from kghelpers import KGATE_BIN, free_port_range, run


def test_demo_runs_a_planned_and_an_unplanned_switch():
    port = free_port_range(8)
    cp = run([KGATE_BIN, "demo", "--port", str(port)], 240)
    out = cp.stdout.decode("utf-8", "replace")
    print(out)
    assert f"kgate 127.0.0.1:{port}" in out, out
    assert re.search(r"planned failover west: answered 200", out), out
    assert re.search(r"failback east: answered 200", out), out
    assert "planned switch refused" not in out, out

    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (producer-1|consumer-1) \|(.*)$",
                                                        out, re.M)}
    assert set(rows) == {"producer-1", "consumer-1"}, out
    for name, row in rows.items():
        cells = [c.strip() for c in row.split("|")]
        assert cells[3] == "0", f"{name} saw errors: {row}"  # the errors column
        assert re.fullmatch(r"\d+ ms", cells[0]) and re.fullmatch(r"\d+ ms", cells[1]), row
    acked = int(re.search(r"^Acknowledged: (\d+)", out, re.M).group(1))
    assert acked > 0 and f"{acked} acked" in rows["producer-1"], out
    assert re.search(r"acknowledged but never received: 0$", out, re.M), out
    planned = re.search(r"^failover to west: answered 200 in [\d.]+ ms, lost (\d+) ", out, re.M)
    assert planned and planned.group(1) == "0", out
    lost = int(re.search(r"lost \(not on the active side at the end\): (\d+)", out).group(1))
    unplanned = re.search(r"^failback to east: answered 200 in [\d.]+ ms, lost (\d+) ", out, re.M)
    assert unplanned and int(unplanned.group(1)) == lost, out  # all loss is the failback's
