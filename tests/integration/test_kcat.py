"""kcat (Debian's, librdkafka 2.0.2) through kgate: metadata and a 10,000-message round trip."""

import random
import re

from kghelpers import run

KCAT_TIMEOUTS = ["-X", "socket.timeout.ms=10000", "-X", "message.timeout.ms=30000",
                 "-X", "broker.address.family=v4"]
BROKER_LINE = re.compile(r"^\s*broker (-?\d+) at (\S+)", re.M)


def kcat_metadata(bootstrap):
    cp = run(["kcat", "-L", "-b", bootstrap, "-m", "15"] + KCAT_TIMEOUTS, timeout=60)
    return cp.stdout.decode()


def payload(i):
    """A deterministic value for message i: its index, then bytes of every value except the
    newline kcat splits input on (NULs and high bytes included)."""
    rng = random.Random(i)
    body = bytes(rng.choice([b for b in range(256) if b != 0x0A]) for _ in range(rng.randrange(0, 200)))
    return b"%05d|" % i + body


def test_devcluster_reports_version_and_stops_cleanly(dev_cluster):
    # The fixture asserts the version and, at teardown, exit code 0 after SIGTERM.
    assert dev_cluster.version
    out = kcat_metadata(dev_cluster.bootstrap)
    assert len(BROKER_LINE.findall(out)) == 3


def test_metadata_lists_only_kgate_addresses(kgate):
    out = kcat_metadata(kgate.bootstrap)
    brokers = BROKER_LINE.findall(out)
    assert len(brokers) == 3, out
    for node_id, address in brokers:
        assert address == kgate.broker_address(int(node_id)), out
    if not kgate.direct:
        for host, port in kgate.backend.hostports:
            assert f"{host}:{port}" not in out, out
    assert 'topic "kcat6" with 6 partitions' in out


def parse_kcat_records(raw):
    """Parses kcat -f '%p %o %K %S\\n%k%s' output into (partition, offset, key, value)."""
    records = []
    pos = 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        partition, offset, klen, vlen = (int(x) for x in raw[pos:nl].split(b" "))
        pos = nl + 1
        key = raw[pos:pos + max(klen, 0)]
        pos += max(klen, 0)
        value = raw[pos:pos + max(vlen, 0)]
        pos += max(vlen, 0)
        records.append((partition, offset, key, value))
    return records


def test_10000_messages_round_trip_byte_identical_in_partition_order(kgate):
    count = 10_000
    values = [payload(i) for i in range(count)]
    # kcat -K: splits key and value at the first ':'; keys spread the messages over partitions.
    stdin = b"".join(b"k%d:" % i + v + b"\n" for i, v in enumerate(values))
    run(["kcat", "-P", "-b", kgate.bootstrap, "-t", "kcat6", "-K", ":",
         "-X", "linger.ms=20", "-X", "acks=all"] + KCAT_TIMEOUTS, timeout=120, input=stdin)

    cp = run(["kcat", "-C", "-b", kgate.bootstrap, "-t", "kcat6", "-o", "beginning", "-e",
              "-f", r"%p %o %K %S\n%k%s"] + KCAT_TIMEOUTS, timeout=120)
    records = parse_kcat_records(cp.stdout)

    assert len(records) == count, f"consumed {len(records)} of {count}"
    by_partition = {}
    for partition, offset, key, value in records:
        index = int(key[1:])
        assert value == values[index], f"message {index} altered"
        by_partition.setdefault(partition, []).append((offset, index))
    assert sorted(by_partition) == list(range(6)), "keys should spread over all 6 partitions"
    for partition, entries in by_partition.items():
        offsets = [o for o, _ in entries]
        indexes = [i for _, i in entries]
        assert offsets == list(range(len(entries))), f"partition {partition}: offset gaps"
        assert indexes == sorted(indexes), f"partition {partition}: production order not kept"
    assert sorted(i for e in by_partition.values() for _, i in e) == list(range(count))
