// KafkaJS over SASL_PLAINTEXT for the security tests: produce COUNT values, then consume them
// in a consumer group, and print {"acked": N, "consumed": [...]}; with "expect_auth_error", only
// connect and print {"auth_error": "..."} (the error KafkaJS reports). Failures exit non-zero.
// Usage: node kafkajs_sasl.cjs '{"bootstrap", "topic", "count", "group", "mechanism",
//                                "username", "password", "prefix", "ca"?}'
//        ("ca": the PEM CA of kgate's certificate: SASL_SSL instead of SASL_PLAINTEXT)
//        (mechanism "oauthbearer": "token" instead of username and password)
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const args = JSON.parse(process.argv[2]);
const kafka = new Kafka({
  clientId: 'kgate-it-kafkajs-sasl',
  brokers: [args.bootstrap],
  ssl: args.ca ? { ca: [fs.readFileSync(args.ca, 'utf-8')] } : undefined, // SASL_SSL
  sasl: args.mechanism === 'oauthbearer'
    ? { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: args.token }) }
    : { mechanism: args.mechanism, username: args.username, password: args.password },
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: args.expect_auth_error ? 0 : 5, initialRetryTime: 200 },
  logLevel: logLevel.NOTHING,
});

async function produce() {
  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < args.count; i++) messages.push({ value: `${args.prefix}-${i}` });
  const meta = await producer.send({ topic: args.topic, acks: -1, messages });
  await producer.disconnect();
  return meta.reduce((n, m) => n + (m.errorCode === 0 ? 1 : 0), 0) ? args.count : 0;
}

async function consume() {
  const want = new Set();
  for (let i = 0; i < args.count; i++) want.add(`${args.prefix}-${i}`);
  const got = [];
  const consumer = kafka.consumer({ groupId: args.group, sessionTimeout: 6000,
    heartbeatInterval: 500, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic: args.topic, fromBeginning: true });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${got.length} in 60 s`)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        const v = message.value.toString();
        got.push(v);
        want.delete(v);
        if (want.size === 0) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  return got;
}

async function main() {
  if (args.expect_auth_error) {
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.listTopics();
      console.log(JSON.stringify({ auth_error: null }));
    } catch (e) {
      console.log(JSON.stringify({ auth_error: `${e.name}: ${e.message}` }));
    } finally {
      await admin.disconnect().catch(() => {});
    }
    return;
  }
  const acked = await produce();
  const consumed = await consume();
  console.log(JSON.stringify({ acked, consumed }));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
