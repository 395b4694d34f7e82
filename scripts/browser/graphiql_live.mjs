// Drives the GraphiQL page of a running autoglue in Debian's chromium, as a person would:
// puts the Authorization header into GraphiQL's Headers editor, starts a `test.sleep` run of
// the organization (over HTTP, as another client would), types a `workflowRunUpdated`
// subscription for it into the query editor, runs it, and reports what GraphiQL showed and
// what came over its WebSocket.
//
//   node graphiql_live.mjs BASE_URL TOKEN ORGANIZATION_ID
//
// Prints one JSON object: {run, shown: [the response pane's texts, in order], frames:
// [received WebSocket messages], failed: [requests that failed, page errors]}. The Rust test
// (api/tests/api/graphiql.rs) judges the result.
import { chromium } from 'playwright-core';

const [base, token, org] = process.argv.slice(2);
let run = null;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const failed = [];
const frames = [];
const shown = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => failed.push(`page error: ${e}`));
  page.on('requestfailed', (r) => failed.push(`request failed: ${r.url()}`));
  page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
  await page.goto(`${base}/graphiql`);
  const editor = (selector, text) => page.evaluate(([s, t]) => {
    const all = [...document.querySelectorAll(s)];
    all[all.length - 1].CodeMirror.setValue(t);
  }, [selector, text]);
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 20000 });
  await page.getByText('Headers', { exact: true }).click();
  // The Variables and Headers editors share the tool pane; the shown one is the last.
  await page.waitForFunction(() => {
    const all = [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')];
    return all.length > 0 && all[all.length - 1].offsetParent !== null;
  }, null, { timeout: 20000 });
  await editor('.graphiql-editor-tool .CodeMirror', JSON.stringify({ Authorization: `Bearer ${token}` }));
  const started = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: 'mutation($i: StartWorkflowRunInput!) { startWorkflowRun(input: $i) { workflowRun { id } } }',
      variables: { i: { organizationId: org, kind: 'test.sleep', input: { ms: 3000 } } },
    }),
  }).then((r) => r.json());
  run = started.data.startWorkflowRun.workflowRun.id;
  await editor('.graphiql-query-editor .CodeMirror', `subscription {
  workflowRunUpdated(id: "${run}") {
    type
    status
    run { status steps { name status } }
  }
}`);
  // GraphiQL parses the editor's text after a pause, and only a parsed subscription goes
  // over the WebSocket (anything else is POSTed).
  await page.waitForTimeout(750);
  await page.click('.graphiql-execute-button');
  const response = () => page.evaluate(() =>
    document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '');
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    const text = await response();
    if (text && shown[shown.length - 1] !== text) shown.push(text);
    // The run's last event: RUN, SUCCEEDED (earlier events may show the run finished too,
    // as it is when they are delivered).
    if (/"type": "RUN",\s*"status": "SUCCEEDED"/.test(text)) break;
    await page.waitForTimeout(100);
  }
} catch (e) {
  failed.push(`driver: ${e}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ run, shown, frames, failed }));
