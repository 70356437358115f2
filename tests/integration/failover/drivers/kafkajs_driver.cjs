// KafkaJS driver of the failover tests: a producer sending one message every interval_ms
// (without waiting for the previous acknowledgement, at most 200 outstanding) and a consumer
// group member, with KafkaJS's default settings except fromBeginning (a group that lands on a
// cluster without its committed offsets must not skip what was produced there) and a short
// session timeout. Events on stdout, one JSON object per line: see fohelpers.py.
// Runs until stdin closes or SIGTERM.
// Usage: node kafkajs_driver.cjs '{"bootstrap": ..., "topic": ..., "group": ..., "run": ..., "interval_ms": N[, "consumer_config": {...}, "log_level": "DEBUG"]}'
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel } = require('kafkajs');

const args = JSON.parse(process.argv[2]);
const emit = (ev) => process.stdout.write(JSON.stringify(ev) + '\n');
const now = () => Date.now() / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let stopping = false;

const kafka = new Kafka({
  clientId: 'fo-kafkajs',
  brokers: [args.bootstrap],
  logLevel: logLevel[args.log_level || 'WARN'], // log_level 'DEBUG': what its consumer waits for
  logCreator: () => ({ namespace, level, log }) => {
    const { message, error, timestamp, logger, ...rest } = log; // rest: broker, correlationId...
    const extra = args.log_level ? ' ' + JSON.stringify(rest).slice(0, 300) : '';
    process.stderr.write(`${new Date().toISOString()} [${namespace}] ${message} ${error || ''}${extra}\n`);
  },
});

async function produceLoop() {
  const producer = kafka.producer(args.producer_config || {});
  emit({ ev: 'client', role: 'producer', pid: process.pid, id: `producer@${process.pid}`, t: now() });
  await producer.connect();
  let outstanding = 0;
  const prefix = args.run + ':';
  for (let seq = 0; !stopping; seq++) {
    while (outstanding >= 200 && !stopping) await sleep(5);
    emit({ ev: 'sent', seq, t: now() });
    outstanding++;
    producer.send({ topic: args.topic, acks: -1, messages: [{ key: String(seq), value: prefix + seq }] })
      .then((meta) => emit({ ev: 'ack', seq, t: now(), p: meta[0].partition, o: Number(meta[0].baseOffset) }))
      .catch((e) => emit({ ev: 'nack', seq, t: now(), err: String(e) }))
      .finally(() => { outstanding--; });
    await sleep(args.interval_ms);
  }
  const deadline = Date.now() + 5000;
  while (outstanding > 0 && Date.now() < deadline) await sleep(10);
  await producer.disconnect();
}

// One consumer for the whole run. A consumer that stops for good (CRASH with restart=false) is
// never replaced: the driver reports a fatal event and exits 3, and the test fails. A CRASH that
// KafkaJS restarts by itself (restart=true: the same consumer rejoins) is an error event, counted
// by the test.
let consumer = null;

function die(role, err) {
  emit({ ev: 'fatal', role, t: now(), err: String(err && err.stack ? err.stack : err) });
  stopping = true;
  setTimeout(() => process.exit(3), 100);
}

async function startConsumer() {
  consumer = kafka.consumer({ groupId: args.group, sessionTimeout: 6000, heartbeatInterval: 500,
    ...(args.consumer_config || {}) });
  const e = consumer.events;
  consumer.on(e.GROUP_JOIN, (ev) => {
    emit({ ev: 'log', t: now(), msg: `joined: ${JSON.stringify(ev.payload.memberAssignment)}` });
    emit({ ev: 'joined', t: now() });
  });
  consumer.on(e.CRASH, (ev) => {
    if (stopping) return;
    if (ev.payload.restart) {
      emit({ ev: 'error', role: 'consumer', t: now(), err: `crash, restarted by KafkaJS: ${ev.payload.error}` });
    } else {
      die('consumer', `crashed for good (restart=false): ${ev.payload.error}`);
    }
  });
  emit({ ev: 'client', role: 'consumer', pid: process.pid, id: `consumer@${process.pid}`, t: now() });
  await consumer.connect();
  await consumer.subscribe({ topic: args.topic, fromBeginning: true });
  const prefix = args.run + ':';
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const value = message.value ? message.value.toString() : '';
      if (value.startsWith(prefix)) {
        emit({ ev: 'recv', seq: Number(value.slice(prefix.length)), t: now(), p: partition, o: Number(message.offset) });
      }
    },
  });
}

async function main() {
  const stop = () => { stopping = true; };
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
  process.on('unhandledRejection', (e) => die('driver', `unhandled rejection: ${e}`));
  try {
    await startConsumer();
  } catch (e) {
    die('consumer', e);
    return;
  }
  try {
    await produceLoop();
  } catch (e) {
    die('producer', e);
    return;
  }
  setTimeout(() => process.exit(0), 10000).unref();
  if (consumer) await consumer.disconnect();
  process.exit(0);
}

main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
