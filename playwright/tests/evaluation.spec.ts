// Evaluation by contributors: three tabs train an MNIST run whose held-out accuracy is measured by
// the tabs themselves (evaluation leases, each part by two sessions, compared), not by the
// coordinator; the dashboard says who measured it, and the figure is the coordinator's own when
// it measures the same version's checkpoint.
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { mnistMlp } from "@pangea/shared";
import { expect, test } from "../support/fixtures.ts";
import { openContributor, type RunStatus, signIn } from "../support/pages.ts";

let server: ServerProcess;
test.beforeAll(async () => {
  server = await serverProcess({ demo: false });
});
test.afterAll(async () => {
  await server?.dispose();
});

type Evaluated = RunStatus & {
  evaluation: (RunStatus["evaluation"] & { where?: string }) | null;
};

test("three tabs measure the run's held-out accuracy themselves, two sessions per part", async ({
  browser,
}) => {
  test.setTimeout(10 * 60_000);
  const created = await server.api("/api/runs", {
    method: "POST",
    body: JSON.stringify({
      name: "MNIST evaluated by contributors",
      model: mnistMlp,
      dataset: "mnist",
      batchSize: 64,
      strategy: { kind: "asynchronous", maxStaleness: 8, buffer: 1 },
      optimizer: { kind: "adamw", learningRate: 1e-3 },
      evaluateEvery: 30,
      evaluateBy: "contributors",
      // Long enough to be running still when the dashboard looks (a finished run's last
      // evaluation is the coordinator's: its contributors have left).
      stop: { versions: 5000 },
    }),
  });
  expect(created.status).toBe(201);
  const { id: runId } = (await created.json()) as { id: string };
  const context = await browser.newContext();
  for (let i = 0; i < 3; i++) await openContributor(context, server.url, runId);

  const status = async () => (await (await server.api(`/api/runs/${runId}`)).json()) as Evaluated;
  // An evaluation the contributors measured (not one the coordinator stepped in for).
  await expect
    .poll(async () => (await status()).evaluation?.where ?? "", {
      timeout: 8 * 60_000,
      intervals: [2000],
    })
    .toMatch(/^by contributors: \d+ parts, each measured by two sessions/);
  const evaluation = (await status()).evaluation!;
  console.log(
    `evaluation at version ${evaluation.version}: ${evaluation.where}, accuracy ${evaluation.accuracy}`,
  );
  expect(evaluation.accuracy).toBeGreaterThan(0.5);
  expect(evaluation.where).not.toContain("could not finish");

  const dashboard = await context.newPage();
  await signIn(dashboard, server.url, server.token);
  await dashboard.goto(`${server.url}/admin?run=${runId}`);
  await expect(dashboard.getByTestId("evaluated-by")).toContainText(
    /^contributors: \d+ parts, each measured by two sessions/,
    { timeout: 60_000 },
  );
  expect((await server.api(`/api/runs/${runId}/stop`, { method: "POST" })).ok).toBe(true);
});
