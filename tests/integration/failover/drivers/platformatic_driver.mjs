// @platformatic/kafka driver of the failover tests: same behaviour as kafkajs_driver.cjs
// (a producer sending one message every interval_ms, at most 200 outstanding, and a consumer
// group member reading from the committed offsets or else the earliest). Events on stdout:
// see fohelpers.py. Runs until stdin closes or SIGTERM. A consumer that fails to start or whose
// stream errors, or a producer loop that throws, is a fatal event: the driver exits 3 and the
// test fails (never replaced, never only logged).
// Usage: node platformatic_driver.mjs '{"bootstrap": ..., "topic": ..., "group": ..., "run": ..., "interval_ms": N[, "consume": false, "consumer_config": {...}]}'
import { Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';

const args = JSON.parse(process.argv[2]);
const emit = (ev) => process.stdout.write(JSON.stringify(ev) + '\n');
const now = () => Date.now() / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const describe = (e) => String(e && e.stack ? e.stack : e) + (e && e.errors ? '\n' + e.errors.map(String).join('\n') : '');
let stopping = false;

function die(role, err) {
  emit({ ev: 'fatal', role, t: now(), err: describe(err) });
  stopping = true;
  setTimeout(() => process.exit(3), 100);
}

async function produceLoop() {
  const producer = new Producer({ bootstrapBrokers: [args.bootstrap], clientId: 'fo-platformatic-producer',
    serializers: stringSerializers });
  emit({ ev: 'client', role: 'producer', pid: process.pid, id: `producer@${process.pid}`, t: now() });
  let outstanding = 0;
  const prefix = args.run + ':';
  for (let seq = 0; !stopping; seq++) {
    while (outstanding >= 200 && !stopping) await sleep(5);
    emit({ ev: 'sent', seq, t: now() });
    outstanding++;
    producer.send({ messages: [{ topic: args.topic, key: String(seq), value: prefix + seq }], acks: -1 })
      .then((r) => {
        const o = (r.offsets ?? [])[0] ?? {};
        emit({ ev: 'ack', seq, t: now(), p: o.partition, o: Number(o.offset) });
      })
      .catch((e) => emit({ ev: 'nack', seq, t: now(), err: describe(e) }))
      .finally(() => { outstanding--; });
    await sleep(args.interval_ms);
  }
  const deadline = Date.now() + 5000;
  while (outstanding > 0 && Date.now() < deadline) await sleep(10);
  await producer.close();
}

async function consume() {
  const consumer = new Consumer({ bootstrapBrokers: [args.bootstrap], clientId: 'fo-platformatic-consumer',
    groupId: args.group, deserializers: stringDeserializers, sessionTimeout: 6000, heartbeatInterval: 500,
    ...(args.consumer_config || {}) });
  emit({ ev: 'client', role: 'consumer', pid: process.pid, id: `consumer@${process.pid}`, t: now() });
  consumer.on('consumer:group:join', () => emit({ ev: 'joined', t: now() }));
  const stream = await consumer.consume({ topics: [args.topic], mode: 'committed', fallbackMode: 'earliest',
    autocommit: 500 });
  const prefix = args.run + ':';
  stream.on('data', (m) => {
    if (typeof m.value === 'string' && m.value.startsWith(prefix)) {
      emit({ ev: 'recv', seq: Number(m.value.slice(prefix.length)), t: now(), p: m.partition, o: Number(m.offset) });
    }
  });
  stream.on('error', (e) => { if (!stopping) die('consumer', e); });
  return { consumer, stream };
}

async function main() {
  const stop = () => { stopping = true; };
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
  process.on('unhandledRejection', (e) => die('driver', e));
  let group = null;
  // consume=false: the producer only (a backend without the consumer group APIs it needs).
  if (args.consume !== false) consume().then((g) => { group = g; }).catch((e) => die('consumer', e));
  try {
    await produceLoop();
  } catch (e) {
    die('producer', e);
    return;
  }
  setTimeout(() => process.exit(0), 10000).unref();
  if (group) {
    await group.stream.close();
    await group.consumer.close();
  }
  process.exit(0);
}

main().catch((e) => { console.error(describe(e)); process.exit(1); });
