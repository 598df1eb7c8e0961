// The coordinator is killed with SIGKILL mid-run and started again over the same data: the tabs
// reconnect on their own, resuming their sessions, and the run finishes.
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { expect, test } from "../support/fixtures.ts";
import { openContributor, type RunStatus } from "../support/pages.ts";

let server: ServerProcess;
test.beforeAll(async ({ backend }) => {
  server = await serverProcess({ backend });
});
test.afterAll(async () => {
  await server?.dispose();
});

test("tabs reconnect by themselves after a SIGKILL and the run finishes", async ({ browser }) => {
  const created = await server.api("/api/runs", {
    method: "POST",
    body: JSON.stringify({
      name: "restart",
      dataset: "mnist",
      strategy: { kind: "asynchronous", maxStaleness: 8, buffer: 1 },
      optimizer: { kind: "adamw", learningRate: 2e-3 },
      evaluateEvery: 20,
      stop: { targetAccuracy: 0.92, epochs: 30 },
    }),
  });
  const { id } = (await created.json()) as { id: string };
  const status = async () => (await (await server.api(`/api/runs/${id}`)).json()) as RunStatus;

  const context = await browser.newContext();
  const tabs = [
    await openContributor(context, server.url, id),
    await openContributor(context, server.url, id),
  ];
  await expect.poll(async () => (await status()).version, { timeout: 120_000 }).toBeGreaterThan(40);
  const sessions = await Promise.all(tabs.map((t) => t.session()));

  await server.kill();
  for (const t of tabs) await expect(t.page.getByTestId("connection")).toHaveText("reconnecting…");
  const beforeRestart = await Promise.all(tabs.map((t) => t.batches()));

  await server.start();
  const resumed = await status();
  expect(resumed.state).toBe("running");
  for (const [i, t] of tabs.entries()) {
    await expect(t.page.getByTestId("connection")).toHaveText("connected", { timeout: 60_000 });
    // The same session, resumed with its token (sessions are stored), and training again.
    await expect(t.page.getByTestId("contributing")).toHaveAttribute("data-session", sessions[i]!);
    await expect.poll(() => t.batches(), { timeout: 60_000 }).toBeGreaterThan(beforeRestart[i]!);
  }
  await expect
    .poll(async () => (await status()).state, { timeout: 10 * 60_000, intervals: [2000] })
    .toBe("finished");
  const final = await status();
  expect(final.version).toBeGreaterThan(resumed.version);
  // An evaluation reached the target (evaluations run beside training, so the version the run
  // ended at, evaluated after, may sit a little either side of it).
  const points = (
    (await (await server.api(`/api/runs/${id}/metrics`)).json()) as {
      points: { testAccuracy?: number }[];
    }
  ).points;
  expect(Math.max(...points.map((p) => p.testAccuracy ?? 0))).toBeGreaterThanOrEqual(0.92);
  await context.close();
});
