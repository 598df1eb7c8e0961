// The dashboard as a researcher uses it, on a language model: sign in (after a wrong token),
// a refused form, then the Shakespeare GPT preset (customized) created and listed; three tabs
// train it, are paused and resumed, one closes and another joins, until the coordinator's
// held-out loss is 2.5 nats per character or lower. The text sample shows on the run page and on
// a contributor page, and the checkpoint downloaded from the dashboard gives the same loss on the
// CPU reference. Against the Node coordinator and against the edge under wrangler dev.
import { readFileSync } from "node:fs";
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { evaluateText } from "@pangea/shaders/reference";
import { decodeMessage, parameterLayout } from "@pangea/shared";
import { loadTinyShakespeare } from "@pangea/shared/text-node";
import { expect, test } from "../support/fixtures.ts";
import { openContributor, type RunStatus, signIn, type Tab } from "../support/pages.ts";

let server: ServerProcess;
test.beforeAll(async ({ backend }) => {
  server = await serverProcess({ backend });
});
test.afterAll(async () => {
  await server?.dispose();
});

const TARGET = 2.5;
/** The coordinator's held-out windows per evaluation (core/evaluation.ts). */
const WINDOWS = 32;

test("a Shakespeare GPT from the dashboard: three tabs, paused and resumed, one leaves, one joins, to 2.5 nats", async ({
  browser,
}, testInfo) => {
  const context = await browser.newContext();
  const admin = await context.newPage();

  // A wrong token is turned away with a reason; the right one signs in.
  await admin.goto(`${server.url}/admin`);
  await admin.getByTestId("token").fill("not-the-token");
  await admin.getByTestId("sign-in").click();
  await expect(admin.getByRole("alert")).toContainText("not the admin token");
  await signIn(admin, server.url, server.token);

  // The preset; a bad field is refused with the coordinator's reasons, and nothing is created.
  await admin.getByTestId("preset-gpt").click();
  await expect(admin.getByTestId("field-dataset")).toHaveValue("shakespeare");
  await expect(admin.getByTestId("field-model")).toHaveValue("gpt-2x64");
  await admin.getByTestId("field-learningRate").fill("500");
  await admin.getByTestId("create").click();
  await expect(admin.getByTestId("problems")).toContainText("optimizer.learningRate");
  expect(((await (await server.api("/api/runs")).json()) as { runs: unknown[] }).runs).toHaveLength(
    0,
  );
  // Customized as a researcher would for three tabs on a CPU-emulated GPU: smaller batches, more
  // versions for the same samples (on this machine, fewer seconds to the same loss).
  await admin.getByTestId("field-learningRate").fill("0.003");
  await admin.getByTestId("field-batchSize").fill("8");
  await admin.getByTestId("create").click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "running");
  const runId = new URL(admin.url()).searchParams.get("run")!;
  const status = async () =>
    (await (await server.api(`/api/runs/${runId}`)).json()) as RunStatus & {
      evaluation: { sample?: string } | null;
      config: { seed: number };
    };

  // Listed in the runs table.
  await admin.goto(`${server.url}/admin`);
  await expect(admin.locator(`tr[data-run="${runId}"]`)).toContainText("Shakespeare GPT");
  await admin.locator(`tr[data-run="${runId}"] a`).click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "running");

  const tabs: Tab[] = [];
  for (let i = 0; i < 3; i++) tabs.push(await openContributor(context, server.url, runId));
  for (const t of tabs)
    await expect.poll(() => t.batches(), { timeout: 120_000 }).toBeGreaterThan(3);

  // Pause: the tabs go idle (their batch counts stop), and say why.
  await admin.getByTestId("pause-run").click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "paused");
  for (const t of tabs) await expect(t.page.getByTestId("run-state")).toContainText("paused");
  // The batches a tab already held when the pause came still finish (a GPT batch on SwiftShader
  // can take seconds on a busy machine, so wait for the counts to settle rather than a fixed
  // time); at most the two leases a prefetching tab holds, and after that, nothing.
  const atPause = await Promise.all(tabs.map((t) => t.batches()));
  let idle: number[] = [];
  await expect
    .poll(
      async () => {
        const before = await Promise.all(tabs.map((t) => t.batches()));
        await admin.waitForTimeout(3000);
        idle = await Promise.all(tabs.map((t) => t.batches()));
        return JSON.stringify(idle) === JSON.stringify(before);
      },
      { timeout: 60_000, intervals: [0] },
    )
    .toBe(true);
  for (const [i, n] of idle.entries()) expect(n - atPause[i]!).toBeLessThanOrEqual(2);
  await admin.waitForTimeout(4000);
  expect(await Promise.all(tabs.map((t) => t.batches()))).toEqual(idle);

  // Resume: they train again.
  await admin.getByTestId("resume-run").click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "running");
  for (const [i, t] of tabs.entries())
    await expect.poll(() => t.batches(), { timeout: 60_000 }).toBeGreaterThan(idle[i]!);

  // One tab leaves mid-run and another joins: the synchronous rounds go on with whoever is there.
  await tabs[0]!.page.close();
  tabs.push(await openContributor(context, server.url, runId));
  const joined = tabs[3]!;

  await expect
    .poll(async () => (await status()).evaluation?.loss ?? Infinity, {
      timeout: 10 * 60_000,
      intervals: [5000],
    })
    .toBeLessThanOrEqual(TARGET);
  expect(await joined.batches()).toBeGreaterThan(0);

  // Evaluated points reach the run page's chart by server-sent events; the sample shows on the
  // run page and on the contributor page of the tab that joined.
  const chart = admin.getByTestId("accuracy-chart");
  await expect.poll(async () => Number(await chart.getAttribute("data-points"))).toBeGreaterThan(1);
  const sample = admin.getByTestId("sample");
  await expect(sample).toContainText("ROMEO:");
  expect((await sample.textContent())?.length ?? 0).toBeGreaterThan(100);
  await expect(joined.page.getByTestId("sample")).toContainText("ROMEO:");
  await expect(admin.getByTestId("validation-loss")).toContainText("bits");
  await admin.screenshot({ path: testInfo.outputPath("gpt-run.png"), fullPage: true });

  // Stop (the run may already have finished at its 2.45 target), then the checkpoint, once the
  // version the run stands at has its own evaluation.
  if ((await status()).state === "running") {
    await admin.getByTestId("stop-run").click();
    await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "stopped");
  }
  await expect
    .poll(async () => {
      const s = await status();
      return s.evaluation?.version === s.version;
    })
    .toBe(true);
  const final = await status();
  const [download] = await Promise.all([
    admin.waitForEvent("download"),
    admin.getByTestId("checkpoint").click(),
  ]);
  const file = testInfo.outputPath(download.suggestedFilename());
  await download.saveAs(file);
  const decoded = decodeMessage(new Uint8Array(readFileSync(file)));
  if (!decoded.ok || decoded.message.payload.type !== "welcome")
    throw new Error("not a checkpoint");
  const { model, parameters, version } = decoded.message.payload;
  expect(version).toBe(final.version);
  const layout = parameterLayout(model);
  const params = new Float32Array(layout.size);
  for (const [i, slot] of layout.slots.entries())
    params.set(parameters[i]!.data as Float32Array, slot.offset);
  // The coordinator's windows: window w is drawn with the run's seed + w.
  const validation = loadTinyShakespeare().validation;
  let loss = 0;
  for (let w = 0; w < WINDOWS; w++)
    loss += evaluateText(model, params, validation, 1, final.config.seed + w, 1).loss;
  loss /= WINDOWS;
  expect(loss).toBeCloseTo(final.evaluation!.loss, 9);
  expect(loss).toBeLessThanOrEqual(TARGET + 0.05);
  await context.close();
});
