// The step runner shared by kafkajs_acl.cjs and platformatic_acl.mjs (test_acl_clients.py):
// runs each step of process.argv[2]'s "steps" with OPS[step.op], and prints one JSON line, the
// result of every step: {"ok": value} or {"error": describe(e)}. A step's error is a result, not
// a failure: the process exits 0 unless the arguments are wrong.
'use strict';

async function runSteps(ops, describe) {
  const args = JSON.parse(process.argv[2]);
  const results = [];
  for (const step of args.steps) {
    if (!ops[step.op]) throw new Error(`unknown op ${step.op}`);
    try {
      results.push({ ok: await ops[step.op](step) });
    } catch (e) {
      results.push({ error: describe(e) });
    }
  }
  console.log(JSON.stringify(results));
}

function main(ops, describe) {
  runSteps(ops, describe).then(() => process.exit(0), (e) => {
    console.error(e);
    process.exit(2);
  });
}

module.exports = { main };
