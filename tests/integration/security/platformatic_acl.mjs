// @platformatic/kafka against kgate's ACLs (test_acl_clients.py): runs a list of steps, each as
// one SASL user (acl_steps.cjs), and prints the result of each: {"ok": ...} or {"error":
// {"class", "kafka_errors"}}, what the library reported (its error code, such as
// PLT_KFK_RESPONSE, and the Kafka errors of the protocol errors it carries).
// Usage: node platformatic_acl.mjs '{"bootstrap", "mechanism", "steps": [step...]}'
//   {"op": "produce", "user", "password", "topic", "value"}
//   {"op": "topics", "user", "password"}                      (admin.listTopics)
//   {"op": "idempotent", "user", "password", "topic", "value"}
import { Admin, Producer, stringSerializers } from '@platformatic/kafka';
import steps from './acl_steps.cjs';

const args = JSON.parse(process.argv[2]);

function base(step, clientId) {
  return { clientId, bootstrapBrokers: [args.bootstrap], timeout: 15000, retries: 1,
    retryDelay: 200,
    sasl: { mechanism: args.mechanism, username: step.user, password: step.password } };
}

// The Kafka errors ("TOPIC_AUTHORIZATION_FAILED(29)", ...) anywhere in E's tree of errors.
function kafkaErrors(e, out = new Set()) {
  if (!e || typeof e !== 'object') return out;
  if (e.apiId) out.add(`${e.apiId}(${e.apiCode})`);
  for (const inner of e.errors ?? []) kafkaErrors(inner, out);
  if (e.cause) kafkaErrors(e.cause, out);
  return out;
}

function describe(e) {
  return { class: e.code ?? e.name, kafka_errors: [...kafkaErrors(e)].sort(),
           message: String(e.message).slice(0, 300) };
}

async function produce(step, options = {}) {
  const producer = new Producer({ ...base(step, 'kgate-it-platformatic-acl'),
    serializers: stringSerializers, ...options });
  try {
    const result = await producer.send({ messages: [{ topic: step.topic, value: step.value }],
      acks: -1 });
    return (result.offsets ?? []).length;
  } finally {
    await producer.close().catch(() => {});
  }
}

async function topics(step) {
  const admin = new Admin(base(step, 'kgate-it-platformatic-acl-admin'));
  try {
    return (await admin.listTopics()).sort();
  } finally {
    await admin.close().catch(() => {});
  }
}

const ops = {
  produce: (s) => produce(s),
  topics,
  idempotent: (s) => produce(s, { idempotent: true }),
};

steps.main(ops, describe);
