// KafkaJS against kgate's ACLs (test_acl_clients.py): runs a list of steps, each as one SASL
// user (acl_steps.cjs), and prints the result of each: {"ok": ...} or {"error": {"class",
// "kafka_errors"}}, what KafkaJS reported (its error class, the Kafka error type and code).
// Usage: node kafkajs_acl.cjs '{"bootstrap", "mechanism", "steps": [step...]}'
//   {"op": "produce", "user", "password", "topic", "value"}
//   {"op": "consume", "user", "password", "topic", "group", "value"}  (until VALUE is read)
//   {"op": "topics", "user", "password"}                               (admin.listTopics)
//   {"op": "idempotent", "user", "password", "topic", "value"}
//   {"op": "transaction", "user", "password", "topic", "value", "transactional_id"}
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel } = require('kafkajs');
const { main } = require('./acl_steps.cjs');

const args = JSON.parse(process.argv[2]);

function client(step) {
  return new Kafka({
    clientId: 'kgate-it-kafkajs-acl',
    brokers: [args.bootstrap],
    sasl: { mechanism: args.mechanism, username: step.user, password: step.password },
    connectionTimeout: 5000,
    requestTimeout: 15000,
    // Denials are not retriable; one retry keeps a transient hiccup from failing a step.
    retry: { retries: 1, initialRetryTime: 200 },
    logLevel: logLevel.NOTHING,
  });
}

// The innermost error that carries a Kafka error type (KafkaJS wraps retried errors).
function describe(e) {
  let inner = e;
  while (inner && !inner.type && (inner.originalError || inner.cause)) {
    inner = inner.originalError || inner.cause;
  }
  const pick = inner && inner.type ? inner : e;
  return { class: pick.name, kafka_errors: pick.type ? [`${pick.type}(${pick.code})`] : [],
           message: String(pick.message).slice(0, 300), outer: e.name };
}

async function produce(step, options = {}) {
  const producer = client(step).producer({ allowAutoTopicCreation: false, ...options });
  await producer.connect();
  try {
    if (options.transactionalId) {
      const txn = await producer.transaction();
      try {
        await txn.send({ topic: step.topic, messages: [{ value: step.value }] });
        await txn.commit();
      } catch (e) {
        await txn.abort().catch(() => {});
        throw e;
      }
      return 'committed';
    }
    const meta = await producer.send({ topic: step.topic, acks: -1,
      messages: [{ value: step.value }] });
    return meta.filter((m) => m.errorCode === 0).length; // partitions that took it
  } finally {
    await producer.disconnect().catch(() => {});
  }
}

async function consume(step) {
  const consumer = client(step).consumer({
    groupId: step.group, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 200,
    retry: { retries: 1, initialRetryTime: 200, restartOnFailure: async () => false },
  });
  await consumer.connect();
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${step.value} not read in 45 s`)), 45000);
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        clearTimeout(timer);
        reject(payload.error);
      });
      consumer.subscribe({ topic: step.topic, fromBeginning: true })
        .then(() => consumer.run({
          eachMessage: async ({ message }) => {
            if (message.value.toString() === step.value) {
              clearTimeout(timer);
              resolve('read');
            }
          },
        }))
        .catch((e) => { clearTimeout(timer); reject(e); });
    });
  } finally {
    await consumer.disconnect().catch(() => {});
  }
}

async function topics(step) {
  const admin = client(step).admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).sort();
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

const ops = {
  produce: (s) => produce(s),
  consume,
  topics,
  idempotent: (s) => produce(s, { idempotent: true, maxInFlightRequests: 1 }),
  transaction: (s) => produce(s, { transactionalId: s.transactional_id, maxInFlightRequests: 1 }),
};

main(ops, describe);
