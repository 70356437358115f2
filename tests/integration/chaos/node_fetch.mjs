// Reads a topic from the earliest offset with @platformatic/kafka (Fetch v12+, so topics are
// named by id from Fetch v13 on) and prints what the application got.
// Usage: node node_fetch.mjs '{"bootstrap": "...", "topic": "...", "want": N, "group": "...",
//                              "clientId": "...", "timeoutMs": 30000}'
// Prints one JSON object: {"records": [{"partition", "offset", "value_hex"}], "errors": [...]}.
import { Consumer } from '@platformatic/kafka';

const args = JSON.parse(process.argv[2]);

async function main() {
  const out = { records: [], errors: [] };
  const consumer = new Consumer({
    bootstrapBrokers: [args.bootstrap], clientId: args.clientId ?? 'chaos-node-reader',
    groupId: args.group, timeout: 15000, retries: 8, retryDelay: 200, maxWaitTime: 200,
    sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 15000,
  });
  const deadline = Date.now() + (args.timeoutMs ?? 30000);
  try {
    const stream = await consumer.consume({ topics: [args.topic], mode: 'earliest',
      autocommit: false });
    stream.on('data', (m) => {
      out.records.push({ partition: m.partition, offset: Number(m.offset),
        value_hex: m.value ? Buffer.from(m.value).toString('hex') : null });
    });
    stream.on('error', (e) => { out.errors.push(String(e)); });
    while (out.records.length < args.want && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await stream.close();
  } catch (e) {
    out.errors.push(String(e && e.stack ? e.stack : e));
  } finally {
    await consumer.close().catch((e) => out.errors.push(String(e)));
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
