// Starts GraphiQL on the dli-graphql page. Everything it loads comes from this server.
(function () {
  "use strict";

  var defaultQuery = [
    "# dli-graphql: DLI datasource connections as GraphQL.",
    "#",
    "# Run it with \u25B6 (Ctrl+Enter); variables are below.",
    "# Real DLI needs an IAM token for the project: put it",
    "# into \"X-Auth-Token\" in the Headers tab. With --demo",
    "# the server sends its own token: this runs as it is.",
    "#",
    "# A dashboard: counts by state, and the newest connections",
    "# a page at a time (pass pageInfo.endCursor as `after`).",
    "# Both fields share one DLI list call.",
    "query ConnectionsDashboard($project: ID!, $after: String) {",
    "  connectionStats(projectId: $project) {",
    "    total",
    "    byState { state count }",
    "  }",
    "  connectionsPage(",
    "    projectId: $project",
    "    orderBy: { field: CREATE_TIME, direction: DESC }",
    "    first: 20",
    "    after: $after",
    "  ) {",
    "    totalCount",
    "    pageInfo { hasNextPage endCursor }",
    "    edges {",
    "      node {",
    "        connectionId",
    "        name",
    "        state",
    "        service",
    "        createTime",
    "        queueStatuses { name status errorMessage }",
    "      }",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");

  var variables = JSON.stringify({ project: "my-project" }, null, 2);
  // An empty token means "none": the server then uses its own (the demo's), if any.
  var headers = JSON.stringify({ "X-Auth-Token": "" }, null, 2);

  // GraphiQL takes the first tab's variables only from the `variables` prop, which would
  // also overwrite a returning user's own; so pass it on the first visit only.
  var firstVisit = true;
  try {
    firstVisit = window.localStorage.getItem("graphiql:tabState") === null;
  } catch (e) {
    // No storage (private mode, policies): every visit is a first one.
  }

  var root = document.getElementById("graphiql");
  var endpoint = new URL("graphql", window.location.href);
  // Subscriptions go over a WebSocket to the same path (graphql-transport-ws); the Headers
  // tab's values travel in its connection_init payload.
  var socket = new URL(endpoint.toString());
  socket.protocol = endpoint.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({ url: endpoint.toString(), subscriptionUrl: socket.toString() });
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: headers,
      defaultTabs: [{ query: defaultQuery, variables: variables, headers: headers }],
      variables: firstVisit ? variables : undefined,
      defaultEditorToolsVisibility: "variables",
      isHeadersEditorEnabled: true,
      // Tokens stay in the page; they are never written to local storage.
      shouldPersistHeaders: false,
    })
  );
})();
