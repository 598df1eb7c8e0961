// A crowd in the dashboard: 120 idle sessions (raw WebSockets that join the demo run and
// heartbeat) and one contributor tab. The workers table shows them a page of 50 at a time with
// the whole crowd summarized above it, filters by state, and follows sessions that leave.
import { type Crowd, openCrowd } from "@pangea/coordinator/crowd";
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { expect, test } from "../support/fixtures.ts";
import { openContributor, signIn } from "../support/pages.ts";

let server: ServerProcess;
let crowd: Crowd | undefined;
test.beforeAll(async ({ backend }) => {
  // Every session comes from 127.0.0.1: the per-address limits are raised to let them all in.
  server = await serverProcess({
    demo: true,
    backend,
    env: { PANGEA_NEW_SESSIONS_PER_MINUTE: "10000", PANGEA_SESSIONS_PER_ADDRESS: "10000" },
  });
});
test.afterAll(async () => {
  crowd?.close();
  await server?.dispose();
});

test("the workers table pages a crowd of 121 sessions and summarizes it", async ({ browser }) => {
  const { runs } = (await (await server.api("/api/runs")).json()) as { runs: { id: string }[] };
  const runId = runs[0]!.id;
  crowd = await openCrowd(server.url, runId, 120);
  const context = await browser.newContext();
  const tab = await openContributor(context, server.url);
  const session = await tab.session();
  await expect.poll(() => tab.batches(), { timeout: 120_000 }).toBeGreaterThan(0);

  const dashboard = await context.newPage();
  await signIn(dashboard, server.url, server.token);
  await dashboard.goto(`${server.url}/admin?run=${runId}`);
  const summary = dashboard.getByTestId("workers-summary");
  const range = dashboard.getByTestId("workers-range");
  const rows = dashboard.locator("[data-testid=workers] tbody tr");
  await expect(summary).toContainText("121 connected of 121");
  await expect(summary).toContainText("0 quarantined");
  await expect(range).toHaveText("1–50 of 121");
  await expect(rows).toHaveCount(50);
  // The training tab has credit, so it leads the connected sessions on the first page.
  await expect(rows.first()).toHaveAttribute("data-session", session);

  const next = dashboard.getByRole("button", { name: "Next" });
  await next.click();
  await expect(range).toHaveText("51–100 of 121");
  await expect(rows).toHaveCount(50);
  await next.click();
  await expect(range).toHaveText("101–121 of 121");
  await expect(rows).toHaveCount(21);
  await expect(next).toBeDisabled();

  // Forty of the crowd leave: the summary follows, and the disconnected are listed last.
  crowd.close(40);
  await expect(summary).toContainText("81 connected of 121");
  await expect(rows.last()).toContainText("disconnected");
  await dashboard.getByTestId("workers-show").selectOption("connected");
  await expect(range).toHaveText("1–50 of 81");
  await expect(dashboard.getByRole("button", { name: "Previous" })).toBeDisabled();
  await dashboard.getByTestId("workers-show").selectOption("quarantined");
  await expect(range).toHaveText("none");
  await expect(rows).toHaveCount(0);
  await context.close();
});
