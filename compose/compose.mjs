// Composition check: composes the served subgraph SDL (../schema.graphql) with a second
// subgraph (catalog.graphql) that extends both entities through their keys, then plans a
// query that starts in the catalog and reaches DLI connections. Pure computation: nothing
// is fetched and no server is started. Exits non-zero on composition errors, on hints not
// listed in ALLOWED_HINTS, and when the supergraph lacks what the subgraphs promise.
//
// Run: npm ci && node compose.mjs   (APOLLO_TELEMETRY_DISABLED=true)

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { composeServices } from "@apollo/composition";
import { Supergraph, parseOperation } from "@apollo/federation-internals";
import { QueryPlanner, prettyFormatQueryPlan } from "@apollo/query-planner";
import { parse } from "graphql";

// Hint codes that are harmless by design, each with the reason. Every other hint fails the
// check: hints flag inconsistencies between subgraphs that a reviewer should see.
const ALLOWED_HINTS = new Map([]);

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const read = (path) => readFileSync(here(path), "utf8");

let failures = 0;
const fail = (message) => {
  console.error(`FAIL ${message}`);
  failures += 1;
};

const result = composeServices([
  { name: "dli", url: "http://127.0.0.1:8080/graphql", typeDefs: parse(read("../schema.graphql")) },
  { name: "catalog", url: "http://127.0.0.1:4002/graphql", typeDefs: parse(read("catalog.graphql")) },
]);

if (result.errors) {
  for (const error of result.errors) {
    fail(`composition error ${error.extensions?.code ?? ""}: ${error.message}`);
  }
  process.exit(1);
}

for (const hint of result.hints) {
  const code = hint.definition.code;
  if (ALLOWED_HINTS.has(code)) {
    console.log(`hint ${code} (allowed: ${ALLOWED_HINTS.get(code)}): ${hint.message}`);
  } else {
    fail(`composition hint ${code}: ${hint.message}`);
  }
}

// The supergraph must know every entity as resolvable by the dli subgraph through its key.
for (const key of [
  '@join__type(graph: DLI, key: "projectId connectionId")',
  '@join__type(graph: DLI, key: "projectId id")',
  '@join__type(graph: DLI, key: "id")',
]) {
  if (!result.supergraphSdl.includes(key)) fail(`supergraph lacks ${key}`);
}

// The API schema clients see: fields from both subgraphs on both entities.
const api = result.schema.toAPISchema();
const expected = {
  Query: [
    "connections",
    "connectionsPage",
    "connectionStats",
    "connection",
    "enhancedConnections",
    "enhancedConnection",
    "project",
    "catalogProjects",
  ],
  Project: ["id", "connections", "connectionsPage", "connectionStats", "connection", "displayName"],
  Connection: ["projectId", "connectionId", "name", "state", "createTime", "queueStatuses", "ownerTeam"],
  EnhancedConnection: ["projectId", "id", "name", "status", "privileges", "ownerTeam"],
  // The router passes subscriptions through to the dli subgraph (over WebSocket).
  Subscription: ["connectionEvents"],
  ConnectionEvent: ["kind", "connection", "changedFields", "observedAt"],
};
for (const [type, fields] of Object.entries(expected)) {
  for (const field of fields) {
    if (!api.type(type)?.field?.(field)) fail(`API schema lacks ${type}.${field}`);
  }
}
for (const hidden of ["_entities", "_service"]) {
  if (api.type("Query")?.field(hidden)) fail(`API schema exposes Query.${hidden}`);
}

// A query that starts in the catalog reaches DLI connections through Project's key, and
// comes back to the catalog for Connection.ownerTeam through Connection's key.
const supergraph = Supergraph.build(result.supergraphSdl);
const planner = new QueryPlanner(supergraph);
const operation = parseOperation(
  supergraph.schema,
  `{ catalogProjects { displayName connections(state: ACTIVE) { name ownerTeam } } }`,
);
const plan = prettyFormatQueryPlan(planner.buildQueryPlan(operation));
const fetches = [...plan.matchAll(/Fetch\(service: "(\w+)"\)/g)].map((m) => m[1]);
if (fetches.join(",") !== "catalog,dli,catalog") fail(`unexpected fetch order ${fetches.join(",")}:\n${plan}`);
if (!/\.\.\. on Project \{\s*__typename\s*id\s*\}/.test(plan)) fail(`dli is not entered through Project's key:\n${plan}`);
if (!/\.\.\. on Connection \{\s*__typename\s*projectId\s*connectionId\s*\}/.test(plan)) {
  fail(`catalog is not entered through Connection's key:\n${plan}`);
}

// Enhanced connections listed by dli get their owner from the catalog through their key.
const enhanced = prettyFormatQueryPlan(
  planner.buildQueryPlan(
    parseOperation(
      supergraph.schema,
      `{ enhancedConnections(projectId: "p1", first: 10) { edges { node { name ownerTeam } } } }`,
    ),
  ),
);
const enhancedFetches = [...enhanced.matchAll(/Fetch\(service: "(\w+)"\)/g)].map((m) => m[1]);
if (enhancedFetches.join(",") !== "dli,catalog") fail(`unexpected fetch order ${enhancedFetches.join(",")}:\n${enhanced}`);
if (!/\.\.\. on EnhancedConnection \{\s*__typename\s*projectId\s*id\s*\}/.test(enhanced)) {
  fail(`catalog is not entered through EnhancedConnection's key:\n${enhanced}`);
}

if (failures > 0) {
  console.error(`${failures} composition check(s) failed`);
  process.exit(1);
}
console.log(`composed dli + catalog: ${result.hints.length} hint(s); query plan:`);
console.log(plan);
console.log(enhanced);
