// GraphiQL in a real browser: Debian's chromium, driven by playwright-core, against a
// running `dli-graphql --demo`. Every request that would leave the loopback interface is
// blocked and fails the test.
//
//   DLI_GRAPHQL_URL=http://127.0.0.1:8080 SCREENSHOT=../target/graphiql.png node --test graphiql.test.mjs
import assert from "node:assert/strict";
import { test } from "node:test";
import { chromium } from "playwright-core";

const base = process.env.DLI_GRAPHQL_URL ?? "http://127.0.0.1:8080";
const sim = process.env.DLI_SIM_URL;
const screenshot = process.env.SCREENSHOT ?? "../target/graphiql.png";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

const browserArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

test("GraphiQL renders offline, runs its default query and shows the result", { timeout: 90_000 }, async () => {
  const browser = await chromium.launch({
    executablePath,
    // playwright-core starts it with a fresh, empty profile of its own.
    args: browserArgs,
    timeout: 30_000,
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const blocked = [];
    const problems = [];
    await page.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.protocol === "data:" || LOOPBACK.has(url.hostname)) return route.continue();
      blocked.push(url.href);
      return route.abort("blockedbyclient");
    });
    page.on("console", (msg) => {
      if (msg.type() === "error" || msg.type() === "warning") problems.push(`console.${msg.type()}: ${msg.text()}`);
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));

    const answered = page.waitForResponse(
      (r) => r.url().endsWith("/graphql") && r.request().method() === "POST" && (r.request().postData() ?? "").includes("ConnectionsDashboard"),
      { timeout: 30_000 },
    );
    // Awaited below; a failure before that must not surface as an unhandled rejection.
    answered.catch(() => {});

    const resp = await page.goto(`${base}/graphql`, { waitUntil: "load" });
    assert.equal(resp?.status(), 200);

    // The editor renders with the default query and its variables.
    const queryEditor = page.locator(".graphiql-query-editor .CodeMirror");
    await queryEditor.waitFor({ timeout: 30_000 });
    await page.waitForFunction(
      () => document.querySelector(".graphiql-query-editor .CodeMirror")?.CodeMirror?.getValue().includes("query ConnectionsDashboard"),
      null,
      { timeout: 15_000 },
    );
    const variables = await page.evaluate(
      () => document.querySelector(".graphiql-editor-tool .CodeMirror")?.CodeMirror?.getValue() ?? "",
    );
    assert.deepEqual(JSON.parse(variables), { project: "my-project" });

    // The headers tab hints at X-Auth-Token.
    await page.getByRole("button", { name: "Headers" }).click();
    await page.waitForFunction(
      () => [...document.querySelectorAll(".graphiql-editor-tool .CodeMirror")].some((e) => e.CodeMirror?.getValue().includes("X-Auth-Token")),
      null,
      { timeout: 10_000 },
    );
    await page.getByRole("button", { name: "Variables" }).click();

    // Run the default query.
    await page.locator(".graphiql-execute-button").click();
    const graphqlResponse = await answered;
    assert.equal(graphqlResponse.status(), 200);
    const body = await graphqlResponse.json();
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    const edges = body.data.connectionsPage?.edges;
    assert.ok(Array.isArray(edges) && edges.length > 0, JSON.stringify(body));
    assert.ok(body.data.connectionStats.total >= edges.length, JSON.stringify(body));

    // The result appears in the response pane.
    const first = edges[0].node.connectionId;
    await page.waitForFunction(
      (id) => document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror?.getValue().includes(id),
      first,
      { timeout: 15_000 },
    );
    const shown = await page.evaluate(() => document.querySelector(".graphiql-response .CodeMirror").CodeMirror.getValue());
    assert.deepEqual(JSON.parse(shown).data.connectionsPage.edges.length, edges.length);

    await page.screenshot({ path: screenshot });
    assert.deepEqual(blocked, [], "requests that would have left the host");
    assert.deepEqual(problems, [], "console errors, page errors or failed requests");
    console.log(`GraphiQL ok: ${edges.length} connections shown; screenshot ${screenshot}`);
  } finally {
    await browser.close();
  }
});

test("GraphiQL runs a subscription and shows a change the simulator makes", { timeout: 90_000, skip: !sim && "DLI_SIM_URL not set" }, async () => {
  const browser = await chromium.launch({ executablePath, args: browserArgs, timeout: 30_000 });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const problems = [];
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(`console.error: ${msg.text()}`);
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    await page.goto(`${base}/graphql`, { waitUntil: "load" });
    await page.locator(".graphiql-query-editor .CodeMirror").waitFor({ timeout: 30_000 });
    // Only CSS connections: the demo's own animation (DWS and RDS) cannot overwrite the
    // pane between our change and the check.
    const query = "subscription Watch { connectionEvents(projectId: \"graphiql-watch\", service: \"CSS\") { kind connection { name state } } }";
    await page.evaluate((q) => document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(q), query);
    // GraphiQL takes the editor's text into its state after a short debounce.
    await page.waitForTimeout(1000);
    const socket = page.waitForEvent("websocket", { timeout: 30_000 });
    await page.locator(".graphiql-execute-button").click();
    await socket;
    // The snapshot arrives over the WebSocket (the pane shows the latest payload: at the
    // end of the snapshot, the marker).
    await page.waitForFunction(
      () => (document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror?.getValue() ?? "").includes("snapshotComplete"),
      null,
      { timeout: 30_000, polling: 100 },
    );
    const created = await fetch(`${sim}/__sim/projects/graphiql-watch/connections`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "seen-in-graphiql", service: "CSS" }),
    });
    assert.equal(created.status, 201);
    await page.waitForFunction(
      () => {
        const shown = document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror?.getValue() ?? "";
        return shown.includes("seen-in-graphiql") && shown.includes("ADDED");
      },
      null,
      { timeout: 30_000, polling: 100 },
    );
    assert.deepEqual(problems, [], "console or page errors");
    console.log("GraphiQL subscription ok: the ADDED event reached the result pane");
  } finally {
    await browser.close();
  }
});
