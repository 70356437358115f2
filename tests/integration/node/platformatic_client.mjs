// @platformatic/kafka client driven by the integration tests: same scenario as
// kafkajs_client.cjs (produce; a 2-member consumer group; restart from committed offsets).
// Usage: node platformatic_client.mjs '{"bootstrap": "...", "topic": "...", "count": N, ...}'
// Prints one JSON object on stdout; failures exit non-zero with the error on stderr. A consumer
// stream error fails the step it happened in (recorded in "errors"), never only logged.
import { Admin, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';

const args = JSON.parse(process.argv[2]);
const base = { bootstrapBrokers: [args.bootstrap], timeout: 15000, retries: 8, retryDelay: 200 };

async function produce(start, count) {
  const producer = new Producer({ ...base, clientId: 'kgate-it-platformatic-producer',
    serializers: stringSerializers });
  const acked = [];
  for (let i = start; i < start + count; i += 100) {
    const messages = [];
    for (let j = i; j < Math.min(i + 100, start + count); j++) {
      messages.push({ topic: args.topic, key: `k${j}`, value: `platformatic-${j}` });
    }
    const result = await producer.send({ messages, acks: -1 });
    for (const o of result.offsets ?? []) acked.push({ partition: o.partition, offset: Number(o.offset) });
  }
  await producer.close();
  return acked;
}

// Runs `members` consumers in one group until `want` distinct values arrived and every member
// has been assigned partitions at least once (or the deadline passes).
async function consumeGroup(members, want, deadlineMs) {
  const records = [];
  const joins = [];
  const seen = new Set();
  const consumers = [];
  const assigned = new Set();
  let shared = members === 1;
  const deadline = Date.now() + deadlineMs;
  const streamErrors = [];
  for (let m = 0; m < members; m++) {
    const name = `member-${m}`;
    const consumer = new Consumer({ ...base, clientId: `kgate-it-platformatic-${name}`,
      groupId: args.group, deserializers: stringDeserializers, sessionTimeout: 10000,
      heartbeatInterval: 500, rebalanceTimeout: 15000, maxWaitTime: 200 });
    const stream = await consumer.consume({ topics: [args.topic], mode: 'committed',
      fallbackMode: 'earliest', autocommit: 100 });
    stream.on('data', (message) => {
      records.push({ member: name, partition: message.partition, offset: Number(message.offset),
        value: message.value });
      seen.add(message.value);
    });
    stream.on('error', (e) => { streamErrors.push(`${name} stream error: ${e}`); });
    consumers.push({ name, consumer, stream });
  }
  while (Date.now() < deadline && streamErrors.length === 0) {
    for (const c of consumers) {
      const parts = (c.consumer.assignments ?? []).flatMap((a) => a.partitions);
      if (parts.length > 0 && parts.length < args.partitions) shared = true;
      if (parts.length > 0 && !assigned.has(c.name)) {
        assigned.add(c.name);
        joins.push({ member: c.name, partitions: parts });
      }
    }
    if (seen.size >= want && (assigned.size === members || shared)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // Let autocommit flush what was processed, then leave the group.
  await new Promise((r) => setTimeout(r, 300));
  for (const c of consumers) {
    await c.stream.close();
    await c.consumer.close();
  }
  if (streamErrors.length) throw new Error(streamErrors.join('\n'));
  return { records, joins, shared };
}

// Each step runs only when asked for: the test asks for the steps whose Kafka API versions the
// gateway advertises (this client needs Kafka >= 3.5 APIs). A failing step records its error.
const steps = {
  async metadata(out) {
    const admin = new Admin({ ...base, clientId: 'kgate-it-platformatic-admin' });
    try {
      const md = await admin.metadata({ topics: [args.topic] });
      out.cluster = { brokers: [...md.brokers.entries()].map(([id, b]) => ({ nodeId: id, host: b.host, port: b.port })) };
    } finally {
      await admin.close();
    }
  },
  async produce(out) {
    out.produced = await produce(0, args.count);
  },
  async group(out) {
    out.consumed = await consumeGroup(2, args.count, 60000);
    out.produced_after = await produce(args.count, args.count_after);
    out.consumed_after = await consumeGroup(1, args.count_after, 60000);
  },
};

async function main() {
  const out = { errors: {} };
  for (const name of args.steps) {
    try {
      await steps[name](out);
    } catch (e) {
      out.errors[name] = String(e && e.stack ? e.stack : e) + (e && e.errors ? '\n' + e.errors.join('\n') : '');
      break;
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
