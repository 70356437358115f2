"""kafka-python driver of the failover tests: a producer producing one message every
interval_ms and a consumer group member, with the library's default settings except
auto_offset_reset="earliest" (a consumer group that lands on a cluster without its committed
offsets must not skip what was produced there) and a short session timeout.
Events on stdout: see fohelpers.py. Runs until stdin closes or SIGTERM.
A send() that fails with a Kafka error is a nack; any other exception, or a consumer whose poll()
keeps raising (MAX_POLL_ERRORS in a row, with no successful poll between), is a fatal event:
the test fails. Single poll errors are reported as error events.

Usage: kafka_python_driver.py '{"bootstrap": ..., "topic": ..., "group": ..., "run": ..., "interval_ms": N[, "consumer_config": {...}]}'
"""

import logging
import sys
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from driverlib import ARGS, STOP, client, emit, error, fatal, run

MAX_POLL_ERRORS = 50


def produce_loop():
    producer = KafkaProducer(bootstrap_servers=ARGS["bootstrap"],
                             client_id="fo-kafka-python-producer")
    client("producer")
    interval = ARGS["interval_ms"] / 1000.0
    seq = 0
    while not STOP.is_set():
        emit(ev="sent", seq=seq, t=time.time())
        try:
            future = producer.send(ARGS["topic"], key=str(seq).encode(),
                                   value=f"{ARGS['run']}:{seq}".encode())
            future.add_callback(lambda md, s=seq: emit(ev="ack", seq=s, t=time.time(),
                                                       p=md.partition, o=md.offset))
            future.add_errback(lambda e, s=seq: emit(ev="nack", seq=s, t=time.time(),
                                                     err=repr(e)))
        except KafkaError as e:  # send() itself fails, e.g. metadata not available in time
            emit(ev="nack", seq=seq, t=time.time(), err=repr(e))
        seq += 1
        STOP.wait(interval)
    producer.flush(5)
    producer.close(5)


class Joined(ConsumerRebalanceListener):
    """Reports each assignment the group gives it (a join, or a rejoin after a switch)."""

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        emit(ev="joined", t=time.time())


def consume_loop():
    consumer = KafkaConsumer(bootstrap_servers=ARGS["bootstrap"],
                             group_id=ARGS["group"], client_id="fo-kafka-python-consumer",
                             auto_offset_reset="earliest", session_timeout_ms=6000,
                             **{"heartbeat_interval_ms": 1000,
                                **ARGS.get("consumer_config", {})})
    consumer.subscribe([ARGS["topic"]], listener=Joined())
    client("consumer")
    prefix = ARGS["run"] + ":"
    errors_in_a_row = 0
    while not STOP.is_set():
        try:
            batches = consumer.poll(timeout_ms=200)
        except KafkaError as e:
            errors_in_a_row += 1
            if errors_in_a_row >= MAX_POLL_ERRORS:
                fatal("consumer", f"poll() failed {errors_in_a_row} times in a row, last: {e!r}")
                break
            error("consumer", repr(e))
            STOP.wait(0.2)
            continue
        errors_in_a_row = 0
        for records in batches.values():
            for r in records:
                value = (r.value or b"").decode()
                if value.startswith(prefix):
                    emit(ev="recv", seq=int(value[len(prefix):]), t=time.time(),
                         p=r.partition, o=r.offset)
    consumer.close()


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(producer=produce_loop, consumer=consume_loop)


if __name__ == "__main__":
    main()
