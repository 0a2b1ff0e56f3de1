// GraphQL-over-HTTP conformance: runs graphql-http's serverAudits against a real dli-graphql.
//
// Usage: node audit.mjs [path/to/dli-graphql]   (default: ../target/debug/dli-graphql)
// Starts the server in demo mode on a free loopback port, runs every audit, prints each
// result, and exits 1 if any MUST audit fails. SHOULD/MAY audits that do not pass are
// printed as warnings. Talks to loopback only and stops by itself.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { serverAudits } from 'graphql-http';

const here = path.dirname(fileURLToPath(import.meta.url));
const binary = process.argv[2] ?? path.join(here, '..', 'target', 'debug', 'dli-graphql');
const deadline = setTimeout(() => fail('timed out after 120 s'), 120_000);

let server;
function fail(message) {
  console.error(`conformance: ${message}`);
  if (server) server.kill('SIGTERM');
  process.exit(1);
}

function start() {
  return new Promise((resolve, reject) => {
    server = spawn(binary, ['--demo', '--listen', '127.0.0.1:0'], {
      env: { ...process.env, RUST_LOG: 'warn,dli_graphql=info', NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    server.on('error', reject);
    server.on('exit', (code) => reject(new Error(`server exited early (code ${code})`)));
    let buffered = '';
    server.stderr.on('data', (chunk) => {
      buffered += chunk.toString();
      const found = buffered.match(/GraphQL at (http:\/\/127\.0\.0\.1:\d+\/graphql)/);
      if (found) resolve(found[1]);
    });
  });
}

const url = await start().catch((e) => fail(`cannot start ${binary}: ${e.message}`));
console.log(`conformance: auditing ${url}`);

const results = [];
for (const audit of serverAudits({ url })) {
  results.push({ name: audit.name, ...(await audit.fn()) });
}

let mustFailures = 0;
let warnings = 0;
for (const r of results) {
  const level = r.name.split(' ')[0];
  if (r.status === 'ok') {
    console.log(`  ok    ${r.name}`);
  } else if (level === 'MUST') {
    mustFailures += 1;
    console.log(`  FAIL  ${r.name}: ${r.reason}`);
  } else {
    warnings += 1;
    console.log(`  warn  ${r.name}: ${r.reason}`);
  }
}
const passed = results.filter((r) => r.status === 'ok').length;
console.log(`conformance: ${results.length} audits, ${passed} ok, ${mustFailures} MUST failures, ${warnings} SHOULD/MAY warnings`);

clearTimeout(deadline);
server.removeAllListeners('exit');
server.kill('SIGTERM');
process.exit(mustFailures > 0 ? 1 : 0);
