"""confluent-kafka-python (librdkafka) driver of the failover tests: a producer producing one
message every interval_ms and a consumer group member, both with the library's default settings
except what a consumer group that may land on a cluster without its committed offsets needs
(auto.offset.reset=earliest) and a short session timeout. Events on stdout: see fohelpers.py.
Runs until stdin closes or SIGTERM. A fatal librdkafka error, a local queue that stays full, or
a loop that raises is a fatal event (the test fails); other errors are reported as error events.

Usage: confluent_driver.py '{"bootstrap": ..., "topic": ..., "group": ..., "run": ..., "interval_ms": N[, "consumer_config": {...}]}'
"""

import time

from confluent_kafka import Consumer, Producer

from driverlib import ARGS, STOP, client, emit, error, fatal, run

QUEUE_FULL_POLLS = 600  # 0.1 s each: a local queue full for a minute means the producer is stuck


def delivery_callback(seq):
    def on_delivery(err, msg):
        if err is not None:
            emit(ev="nack", seq=seq, t=time.time(), err=str(err))
        else:
            emit(ev="ack", seq=seq, t=time.time(), p=msg.partition(), o=msg.offset())
    return on_delivery


def error_cb(role):
    def on_error(err):
        if err.fatal():
            fatal(role, f"fatal librdkafka error: {err}")
        else:
            error(role, err)
    return on_error


def produce_loop():
    producer = Producer({"bootstrap.servers": ARGS["bootstrap"],
                         "client.id": "fo-confluent-producer", "broker.address.family": "v4",
                         "error_cb": error_cb("producer"), **ARGS.get("producer_config", {})})
    client("producer")
    interval = ARGS["interval_ms"] / 1000.0
    seq = 0
    while not STOP.is_set():
        emit(ev="sent", seq=seq, t=time.time())
        for _ in range(QUEUE_FULL_POLLS):
            try:
                producer.produce(ARGS["topic"], key=str(seq), value=f"{ARGS['run']}:{seq}",
                                 on_delivery=delivery_callback(seq))
                break
            except BufferError:  # local queue full: serve callbacks, then retry
                producer.poll(0.1)
        else:
            fatal("producer", f"local queue still full after {QUEUE_FULL_POLLS} polls")
            return
        seq += 1
        next_at = time.monotonic() + interval
        while not STOP.is_set() and time.monotonic() < next_at:
            producer.poll(max(0.0, next_at - time.monotonic()))
    producer.flush(5)


def consume_loop():
    consumer = Consumer({"bootstrap.servers": ARGS["bootstrap"], "group.id": ARGS["group"],
                         "client.id": "fo-confluent-consumer", "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "broker.address.family": "v4",
                         "error_cb": error_cb("consumer"), **ARGS.get("consumer_config", {})})
    client("consumer")
    prefix = ARGS["run"] + ":"

    def on_assign(c, partitions):
        emit(ev="log", msg=f"assigned {[p.partition for p in partitions]}", t=time.time())
        emit(ev="joined", t=time.time())

    def on_revoke(c, partitions):
        emit(ev="log", msg=f"revoked {[p.partition for p in partitions]}", t=time.time())

    consumer.subscribe([ARGS["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    while not STOP.is_set():
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().fatal():
                fatal("consumer", f"fatal consumer error: {msg.error()}")
                break
            error("consumer", msg.error())
            continue
        value = (msg.value() or b"").decode()
        if value.startswith(prefix):
            emit(ev="recv", seq=int(value[len(prefix):]), t=time.time(), p=msg.partition(),
                 o=msg.offset())
    consumer.close()


def main():
    run(producer=produce_loop, consumer=consume_loop)


if __name__ == "__main__":
    main()
