// Lists a project's ACTIVE DLI datasource connections through dli-graphql, with
// graphql-request. Errors come back as GraphQL errors with a stable extensions.code.
//
//   npm ci
//   node connections.mjs [endpoint] [project]      # default: http://127.0.0.1:8080/graphql my-project
//   IAM_TOKEN=... node connections.mjs https://dli-graphql.example/graphql 0123456789abcdef0123456789abcdef
import { ClientError, GraphQLClient, gql } from "graphql-request";

const endpoint = process.argv[2] ?? "http://127.0.0.1:8080/graphql";
const project = process.argv[3] ?? "my-project";

const client = new GraphQLClient(endpoint, {
  // Without a token the server uses its own, if it has one (the demo does).
  headers: process.env.IAM_TOKEN ? { "X-Auth-Token": process.env.IAM_TOKEN } : {},
});

const ActiveConnections = gql`
  query ActiveConnections($project: ID!) {
    connections(projectId: $project, state: ACTIVE) {
      connectionId
      name
      service
      destination
      createTime
    }
  }
`;

try {
  const { connections } = await client.request(ActiveConnections, { project });
  console.log(`${connections.length} active connections in project ${project}:`);
  for (const c of connections) {
    console.log(`  ${c.name.padEnd(20)} ${c.service.padEnd(22)} ${c.destination} (since ${c.createTime})`);
  }
} catch (e) {
  if (!(e instanceof ClientError)) throw e;
  for (const err of e.response.errors ?? []) {
    console.error(`${err.extensions?.code ?? "ERROR"}: ${err.message}`);
  }
  process.exitCode = 1;
}
