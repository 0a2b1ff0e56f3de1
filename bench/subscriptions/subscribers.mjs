// Opens SUBSCRIBERS graphql-transport-ws sockets to the service, each subscribed to
// `connectionEvents` of one of PROJECTS projects (round robin), waits for every snapshot,
// then measures:
//   - upstream polls per interval: list calls the simulator counted over MEASURE seconds,
//     divided by the number of intervals in them (one poller per project: PROJECTS);
//   - the service's resident memory per subscriber: RSS with the subscribers minus RSS
//     before them (VmRSS of SERVICE_PID), divided by SUBSCRIBERS;
//   - fan-out delay: for ROUNDS changes made in every project through the simulator's admin
//     route, the time from the poll that saw it (the event's observedAt) to each subscriber's
//     receipt; p50, p99 and max over all subscribers and rounds.
// Prints one JSON object. Everything is on loopback; the script exits when done.
import { readFileSync } from "node:fs";
import WebSocket from "ws";

const env = (name, fallback) => process.env[name] ?? fallback;
const SERVICE = env("SERVICE_URL", "http://127.0.0.1:18080");
const SIM = env("SIM_URL", "http://127.0.0.1:19200");
const PID = env("SERVICE_PID", "");
const SUBSCRIBERS = Number(env("SUBSCRIBERS", "1000"));
const PROJECTS = Number(env("PROJECTS", "10"));
const INTERVAL_S = Number(env("INTERVAL_S", "1"));
const MEASURE_S = Number(env("MEASURE_S", "10"));
const ROUNDS = Number(env("ROUNDS", "5"));

const QUERY = `subscription($p: ID!) { connectionEvents(projectId: $p) {
  kind observedAt connection { connectionId process } } }`;

const rssKiB = () => {
  if (!PID) return NaN;
  const m = readFileSync(`/proc/${PID}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : NaN;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stats = async () => (await (await fetch(`${SIM}/__sim/stats`)).json());

function subscriber(i) {
  const project = `bench-${i % PROJECTS}`;
  const ws = new WebSocket(SERVICE.replace(/^http/, "ws") + "/graphql", "graphql-transport-ws");
  const s = { ws, project, ready: null, changes: [] };
  s.ready = new Promise((resolve, reject) => {
    ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { "X-Auth-Token": "bench-token" } })));
    ws.on("message", (raw) => {
      const msg = JSON.parse(raw);
      if (msg.type === "connection_ack") {
        ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: QUERY, variables: { p: project } } }));
      } else if (msg.type === "next") {
        if (msg.payload.extensions?.snapshotComplete) return resolve();
        const e = msg.payload.data?.connectionEvents;
        if (e && e.kind === "CHANGED") s.changes.push({ at: Date.now(), observed: Date.parse(e.observedAt), process: e.connection.process });
      } else if (msg.type === "error") {
        reject(new Error(JSON.stringify(msg.payload)));
      }
    });
    ws.on("error", reject);
    ws.on("close", (code) => reject(new Error(`closed ${code}`)));
  });
  return s;
}

const rssBefore = rssKiB();
const subs = [];
for (let i = 0; i < SUBSCRIBERS; i++) {
  subs.push(subscriber(i));
  if (i % 100 === 99) await sleep(50);
}
await Promise.all(subs.map((s) => s.ready));
await sleep(2 * INTERVAL_S * 1000);
const rssWith = rssKiB();

const before = await stats();
await sleep(MEASURE_S * 1000);
const after = await stats();
const polls = after.calls - before.calls;

// The first connection of every project gets a new `process` value each round.
const ids = {};
for (let p = 0; p < PROJECTS; p++) {
  const project = `bench-${p}`;
  const resp = await fetch(`${SIM}/__sim/projects/${project}/connections`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "bench", service: "DWS" }),
  });
  ids[project] = (await resp.json()).connection_id;
}
await sleep(3 * INTERVAL_S * 1000);
for (const s of subs) s.changes.length = 0;
for (let round = 1; round <= ROUNDS; round++) {
  for (const [project, id] of Object.entries(ids)) {
    await fetch(`${SIM}/__sim/projects/${project}/connections/${id}`, {
      method: "PATCH", headers: { "content-type": "application/json" }, body: JSON.stringify({ process: round / 10 }),
    });
  }
  await sleep(2 * INTERVAL_S * 1000);
}
const delays = subs.flatMap((s) => s.changes.map((c) => c.at - c.observed)).sort((a, b) => a - b);
const q = (p) => delays[Math.min(delays.length - 1, Math.floor(p * delays.length))];
const rssPeak = rssKiB();
for (const s of subs) s.ws.terminate();

console.log(JSON.stringify({
  subscribers: SUBSCRIBERS,
  projects: PROJECTS,
  interval_s: INTERVAL_S,
  upstream_polls_per_interval: Number((polls / (MEASURE_S / INTERVAL_S)).toFixed(2)),
  rss_before_kib: rssBefore,
  rss_with_subscribers_kib: rssWith,
  rss_after_changes_kib: rssPeak,
  rss_per_subscriber_kib: Number(((rssWith - rssBefore) / SUBSCRIBERS).toFixed(2)),
  change_events_received: delays.length,
  change_events_expected: SUBSCRIBERS * ROUNDS,
  delay_ms: { p50: q(0.5), p99: q(0.99), max: delays[delays.length - 1] },
}, null, 2));
process.exit(0);
