// Four contributor tabs train the demo MNIST run; two of them close mid-lease and two new ones
// open; the run still reaches 95% with every batch of every epoch committed exactly once, and
// every tab's updates show as accepted in the dashboard's workers table.
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { expect, test } from "../support/fixtures.ts";
import { openContributor, type RunStatus, signIn, type Tab } from "../support/pages.ts";

let server: ServerProcess;
test.beforeAll(async ({ backend }) => {
  server = await serverProcess({ demo: true, backend });
});
test.afterAll(async () => {
  await server?.dispose();
});

const status = async (id: string) =>
  (await (await server.api(`/api/runs/${id}`)).json()) as RunStatus;

test("four tabs train the demo run to 95%; two close mid-lease, two join, no batch lost or counted twice", async ({
  browser,
}, testInfo) => {
  const { runs } = (await (await server.api("/api/runs")).json()) as { runs: { id: string }[] };
  const runId = runs[0]!.id;
  const context = await browser.newContext();
  const tabs: Tab[] = [];
  for (let i = 0; i < 4; i++)
    tabs.push(await openContributor(context, server.url, "", i === 2 ? "Ada" : ""));
  const sessions = await Promise.all(tabs.map((t) => t.session()));
  for (const t of tabs)
    await expect.poll(() => t.batches(), { timeout: 120_000 }).toBeGreaterThan(3);

  await tabs[0]!.page.screenshot({ path: testInfo.outputPath("contributor.png") });

  // Two tabs close while they train (each always holds a lease or is about to): their leases
  // must go back, and someone else must finish those batches.
  const before = await status(runId);
  await tabs[0]!.page.close();
  await tabs[1]!.page.close();
  for (let i = 0; i < 2; i++) {
    const tab = await openContributor(context, server.url);
    tabs.push(tab);
    sessions.push(await tab.session());
  }

  const dashboard = await context.newPage();
  await signIn(dashboard, server.url, server.token);
  await dashboard.goto(`${server.url}/admin?run=${runId}`);
  await expect(dashboard.getByTestId("run-page")).toBeVisible();

  let shot = false;
  await expect
    .poll(
      async () => {
        const s = await status(runId);
        if (!shot && s.evaluation && s.evaluation.accuracy > 0.85) {
          shot = true;
          await dashboard.screenshot({
            path: testInfo.outputPath("dashboard.png"),
            fullPage: true,
          });
        }
        return s.evaluation?.accuracy ?? 0;
      },
      { timeout: 12 * 60_000, intervals: [2000] },
    )
    .toBeGreaterThanOrEqual(0.95);

  const final = await status(runId);
  // Every epoch the run completed, including those the closed tabs were part of, committed each
  // of its batches exactly once (counted apart from the scheduler's own sets).
  expect(final.epoch).toBeGreaterThan(before.epoch);
  const commits = final.counters.batchCommits ?? {};
  for (let e = 0; e < final.epoch; e++)
    expect(commits[e], `epoch ${e}: committed batches`).toBe(final.batchesPerEpoch);

  // The leaderboard, on the named tab's page, credits it by the name its visitor chose; the
  // public status shows contributors only that way (no workers' rows without the token).
  const named = tabs[2]!.page;
  const mine = named.locator(`[data-testid=leaderboard] tr[data-session="${sessions[2]}"]`);
  await expect(mine).toContainText("Ada (this tab)");
  expect(
    Number(((await mine.getByTestId("leader-samples").textContent()) ?? "").replace(/,/g, "")),
  ).toBeGreaterThan(0);
  expect(await named.getByTestId("share").textContent()).not.toBe("—");
  const open = (await (await fetch(`${server.url}/api/runs/${runId}`)).json()) as Record<
    string,
    unknown
  >;
  expect(open.workers).toBeUndefined();
  expect((open.leaderboard as { name: string }[]).map((r) => r.name)).toContain("Ada");

  // Every tab's updates were accepted, and the dashboard's workers table says so.
  for (const id of sessions) {
    const row = dashboard.locator(`tr[data-session="${id}"]`);
    await expect(row).toBeVisible();
    expect(Number(await row.getAttribute("data-accepted")), `session ${id}`).toBeGreaterThan(0);
  }
  await context.close();
});
