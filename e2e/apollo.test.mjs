// Apollo Client 4 (its HttpLink: multipart subscriptions over HTTP) against the demo server:
// an upstream change reaches the application within one interval plus a second.
// Environment: DLI_GRAPHQL_URL (http://host:port), DLI_SIM_URL (the demo's simulator),
// WATCH_INTERVAL_MS (the server's --watch-interval).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const base = process.env.DLI_GRAPHQL_URL;
const sim = process.env.DLI_SIM_URL;
const interval = Number(process.env.WATCH_INTERVAL_MS ?? "1000");
assert.ok(base && sim, "DLI_GRAPHQL_URL and DLI_SIM_URL must be set");

// Only CSS connections: the demo's own animation (DWS, RDS) stays out of the stream.
const WATCH = gql`
  subscription Watch($p: ID!) {
    connectionEvents(projectId: $p, service: "CSS") {
      kind
      changedFields
      connection { projectId connectionId name state }
    }
  }
`;

test("Apollo Client 4's HttpLink sees a change within one interval plus a second", { timeout: 60_000 }, async () => {
  const client = new ApolloClient({
    link: new HttpLink({ uri: `${base}/graphql`, headers: { "X-Auth-Token": "e2e-token" } }),
    cache: new InMemoryCache(),
  });
  const project = "e2e-apollo";
  const snapshot = [];
  let createdAt = 0;
  let name = "";
  const added = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ADDED event: ${snapshot.length} snapshot events`)), 30_000);
    const sub = client.subscribe({ query: WATCH, variables: { p: project } }).subscribe({
      next: ({ data, error }) => {
        if (error) return reject(error);
        const event = data?.connectionEvents;
        if (!event) return;
        if (event.kind === "SNAPSHOT") {
          snapshot.push(event);
          if (snapshot.length === 1) {
            // The rest of the snapshot arrives with the same poll; change DLI once it is in.
            setTimeout(async () => {
              name = `apollo-${Date.now()}`;
              createdAt = Date.now();
              const resp = await fetch(`${sim}/__sim/projects/${project}/connections`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ name, service: "CSS" }),
              });
              if (resp.status !== 201) reject(new Error(`simulator answered ${resp.status}`));
            }, 200);
          }
        } else if (event.kind === "ADDED" && event.connection.name === name) {
          clearTimeout(timer);
          sub.unsubscribe();
          resolve({ event, after: Date.now() - createdAt });
        }
      },
      error: (e) => {
        clearTimeout(timer);
        reject(e);
      },
    });
  });
  assert.ok(snapshot.length >= 1);
  assert.equal(added.event.connection.state, "CREATING");
  assert.ok(added.after <= interval * 1.1 + 1000, `the change took ${added.after} ms to reach the application`);
  console.log(`Apollo Client: ADDED ${added.after} ms after the change (interval ${interval} ms)`);
  client.stop();
});
