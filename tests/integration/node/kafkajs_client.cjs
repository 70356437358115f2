// KafkaJS client driven by the integration tests: produce, consume with a consumer group of two
// members, then restart the group and check it resumes from its committed offsets.
// Usage: node kafkajs_client.cjs '{"bootstrap": "...", "topic": "...", "count": N, "group": "..."}'
// Prints one JSON object on stdout; failures exit non-zero with the error on stderr. A consumer
// that crashes for good (KafkaJS CRASH with restart=false) is such a failure, never hidden, with
// one exception, the mock broker's documented quirk (README): a follower whose SyncGroup arrives
// after the leader's gets INVALID_REQUEST and drops out; that drop is reported in "dropped".
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel } = require('kafkajs');

const args = JSON.parse(process.argv[2]);
const kafka = new Kafka({
  clientId: 'kgate-it-kafkajs',
  brokers: [args.bootstrap],
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 8, initialRetryTime: 200 },
  logLevel: logLevel.ERROR,
});

async function produce(start, count) {
  const producer = kafka.producer();
  await producer.connect();
  const acked = [];
  for (let i = start; i < start + count; i += 100) {
    const messages = [];
    for (let j = i; j < Math.min(i + 100, start + count); j++) {
      messages.push({ key: `k${j}`, value: `kafkajs-${j}` });
    }
    const meta = await producer.send({ topic: args.topic, acks: -1, messages });
    for (const m of meta) {
      if (m.errorCode !== 0) throw new Error(`produce error ${m.errorCode}`);
      acked.push({ partition: m.partition, baseOffset: Number(m.baseOffset) });
    }
  }
  await producer.disconnect();
  return acked;
}

// Runs `members` consumers in one group until `want` distinct values arrived and every member
// has been assigned partitions at least once (or the deadline passes).
async function consumeGroup(members, want, deadlineMs) {
  const consumed = [];
  const joins = [];
  const seen = new Set();
  const consumers = [];
  const assignedMembers = new Set();
  const dropped = [];
  let resolveDone;
  let crashed;
  const done = new Promise((r, reject) => { resolveDone = r; crashed = reject; });
  // The group has shared its partitions once a member was assigned fewer than all of them
  // (librdkafka's mock may drop a late-syncing follower again, so not every member need keep any).
  let shared = members === 1;
  const check = () => { if (seen.size >= want && (assignedMembers.size === members || shared)) resolveDone(); };
  for (let m = 0; m < members; m++) {
    const c = kafka.consumer({ groupId: args.group, sessionTimeout: 6000, heartbeatInterval: 500,
      rebalanceTimeout: 8000, maxWaitTimeInMs: 200, retry: { retries: 8 } });
    const name = `member-${m}`;
    c.on(c.events.CRASH, (e) => {
      if (e.payload.restart) return;
      const err = e.payload.error;
      if (err && err.type === 'INVALID_REQUEST' && String(err.stack).includes('syncGroup')) {
        dropped.push({ member: name, error: String(err) });
        return;
      }
      crashed(new Error(`${name} crashed for good: ${err}`));
    });
    c.on(c.events.GROUP_JOIN, (e) => {
      const parts = Object.values(e.payload.memberAssignment).flat();
      joins.push({ member: name, partitions: parts });
      if (parts.length > 0) assignedMembers.add(name);
      if (parts.length > 0 && parts.length < args.partitions) shared = true;
      check();
    });
    await c.connect();
    await c.subscribe({ topic: args.topic, fromBeginning: true });
    await c.run({
      eachMessage: async ({ partition, message }) => {
        const value = message.value.toString();
        consumed.push({ member: name, partition, offset: Number(message.offset), value });
        seen.add(value);
        check();
      },
    });
    consumers.push(c);
  }
  const timer = setTimeout(resolveDone, deadlineMs);
  await done;
  clearTimeout(timer);
  for (const c of consumers) await c.disconnect(); // commits what was processed
  return { records: consumed, joins, shared, dropped };
}

async function main() {
  const out = { seconds: {} };
  const t0 = Date.now();
  const mark = (name) => { out.seconds[name] = (Date.now() - t0) / 1000; };
  out.produced = await produce(0, args.count);
  mark('produced');
  out.consumed = await consumeGroup(2, args.count, 60000);
  mark('group');
  out.produced_after = await produce(args.count, args.count_after);
  out.consumed_after = await consumeGroup(1, args.count_after, 60000);
  mark('restarted');
  const admin = kafka.admin();
  await admin.connect();
  out.cluster = await admin.describeCluster();
  await admin.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
