// `connectionEvents` through the real npm clients against the demo server:
// graphql-ws (graphql-transport-ws over WebSocket) and graphql-sse (distinct connections).
// Each test subscribes, reads the snapshot up to the end-of-snapshot marker, creates a
// connection in the simulator (its admin route), and waits for the ADDED event.
// Environment: DLI_GRAPHQL_URL (http://host:port), DLI_SIM_URL (the demo's simulator).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient as createWsClient } from "graphql-ws";
import { createClient as createSseClient } from "graphql-sse";
import WebSocket from "ws";

const base = process.env.DLI_GRAPHQL_URL;
const sim = process.env.DLI_SIM_URL;
assert.ok(base && sim, "DLI_GRAPHQL_URL and DLI_SIM_URL must be set");

const QUERY = `subscription($p: ID!) { connectionEvents(projectId: $p) {
  kind changedFields connection { connectionId name state process } } }`;

async function createConnection(project, name) {
  const resp = await fetch(`${sim}/__sim/projects/${project}/connections`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, service: "DWS" }),
  });
  assert.equal(resp.status, 201);
  return (await resp.json()).connection_id;
}

// Reads payloads from `subscribe(sink)` until the ADDED event of the connection the
// snapshot's end triggers; returns what it saw.
function watch(subscribe, project, name) {
  return new Promise((resolve, reject) => {
    const seen = { snapshot: 0, marker: null, added: null };
    let created = null;
    const timer = setTimeout(() => reject(new Error(`no ADDED event in time: ${JSON.stringify(seen)}`)), 30_000);
    const stop = subscribe({
      next: (payload) => {
        if (payload.errors) return reject(new Error(JSON.stringify(payload.errors)));
        if (payload.extensions?.snapshotComplete) {
          seen.marker = payload.extensions;
          createConnection(project, name).then((id) => (created = id), reject);
          return;
        }
        const event = payload.data.connectionEvents;
        if (event.kind === "SNAPSHOT") seen.snapshot += 1;
        if (event.kind === "ADDED" && event.connection.name === name) {
          seen.added = event;
          seen.created = created;
          clearTimeout(timer);
          stop();
          resolve(seen);
        }
      },
      error: (e) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(JSON.stringify(e)));
      },
      complete: () => {},
    });
  });
}

test("graphql-ws receives the snapshot, its marker and an ADDED event", async () => {
  const client = createWsClient({
    url: base.replace(/^http/, "ws") + "/graphql",
    webSocketImpl: WebSocket,
    connectionParams: { "X-Auth-Token": "e2e-token" },
    lazy: false,
    retryAttempts: 0,
  });
  try {
    const seen = await watch(
      (sink) => client.subscribe({ query: QUERY, variables: { p: "e2e-ws" } }, sink),
      "e2e-ws",
      "from-graphql-ws",
    );
    assert.equal(seen.snapshot, 12);
    assert.equal(seen.marker.snapshotSize, 12);
    assert.equal(seen.added.connection.state, "CREATING");
  } finally {
    await client.dispose();
  }
});

test("graphql-sse receives the snapshot, its marker and an ADDED event", async () => {
  const client = createSseClient({
    url: base + "/graphql",
    headers: { "X-Auth-Token": "e2e-token" },
    retryAttempts: 0,
  });
  try {
    const seen = await watch(
      (sink) => client.subscribe({ query: QUERY, variables: { p: "e2e-sse" } }, sink),
      "e2e-sse",
      "from-graphql-sse",
    );
    assert.equal(seen.snapshot, 12);
    assert.equal(seen.marker.snapshotSize, 12);
  } finally {
    client.dispose();
  }
});

test("graphql-ws sees a refused project end with its code", async () => {
  const client = createWsClient({
    url: base.replace(/^http/, "ws") + "/graphql",
    webSocketImpl: WebSocket,
    retryAttempts: 0,
  });
  try {
    const payloads = [];
    await new Promise((resolve, reject) => {
      client.subscribe({ query: QUERY, variables: { p: "fault-403" } }, {
        next: (p) => payloads.push(p),
        error: reject,
        complete: resolve,
      });
    });
    assert.equal(payloads.length, 1);
    assert.equal(payloads[0].errors[0].extensions.code, "FORBIDDEN");
  } finally {
    await client.dispose();
  }
});
