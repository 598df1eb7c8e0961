// The dashboard as a researcher uses it: sign in, create a run from the form (after a refused
// one), see it listed, watch its accuracy chart move while two tabs train, pause and see the tabs
// go idle, resume, stop, download the checkpoint and check its accuracy with the CPU reference.
import { readFileSync } from "node:fs";
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { evaluate } from "@pangea/shaders/reference";
import { decodeMessage, parameterLayout } from "@pangea/shared";
import { loadMnist } from "@pangea/shared/mnist";
import { expect, test } from "@playwright/test";
import { openContributor, type RunStatus, signIn } from "../support/pages.ts";

let server: ServerProcess;
test.beforeAll(async () => {
  server = await serverProcess();
});
test.afterAll(async () => {
  await server?.dispose();
});

test("sign in, create, watch, pause, resume, stop, download the checkpoint", async ({
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

  // A bad form is refused with the coordinator's reasons, and nothing is created.
  await admin.getByTestId("field-name").fill("dashboard run");
  await admin.getByTestId("field-learningRate").fill("500");
  await admin.getByTestId("create").click();
  await expect(admin.getByTestId("problems")).toContainText("optimizer.learningRate");
  expect(((await (await server.api("/api/runs")).json()) as { runs: unknown[] }).runs).toHaveLength(
    0,
  );

  await admin.getByTestId("field-learningRate").fill("0.002");
  await admin.getByTestId("field-targetAccuracy").fill("0");
  await admin.getByTestId("field-epochs").fill("0");
  await admin.getByTestId("create").click();
  await expect(admin.getByTestId("run-page")).toBeVisible();
  const runId = new URL(admin.url()).searchParams.get("run")!;

  // Listed in the runs table.
  await admin.goto(`${server.url}/admin`);
  await expect(admin.locator(`tr[data-run="${runId}"]`)).toContainText("dashboard run");
  await admin.locator(`tr[data-run="${runId}"] a`).click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "running");

  const tabs = [
    await openContributor(context, server.url, runId),
    await openContributor(context, server.url, runId),
  ];

  // The accuracy chart moves: evaluated points arrive by server-sent events.
  const chart = admin.getByTestId("accuracy-chart");
  await expect
    .poll(async () => Number(await chart.getAttribute("data-points")), { timeout: 180_000 })
    .toBeGreaterThanOrEqual(3);
  await admin.screenshot({ path: testInfo.outputPath("dashboard-run.png"), fullPage: true });

  // Pause: the tabs go idle (their batch counts stop), and say why.
  await admin.getByTestId("pause-run").click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "paused");
  for (const t of tabs) await expect(t.page.getByTestId("run-state")).toContainText("paused");
  // A batch already on the GPU when the pause came still finishes; after that, nothing.
  await admin.waitForTimeout(2000);
  const idle = await Promise.all(tabs.map((t) => t.batches()));
  await admin.waitForTimeout(4000);
  expect(await Promise.all(tabs.map((t) => t.batches()))).toEqual(idle);

  // Resume: they train again.
  await admin.getByTestId("resume-run").click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "running");
  for (const [i, t] of tabs.entries())
    await expect.poll(() => t.batches(), { timeout: 60_000 }).toBeGreaterThan(idle[i]!);
  // Train on until the coordinator's own evaluation passes 85%: how many versions the steps above
  // took depends on the machine's speed, and the checkpoint's check below must not.
  const evaluated = async () =>
    ((await (await server.api(`/api/runs/${runId}`)).json()) as RunStatus).evaluation?.accuracy ??
    0;
  await expect.poll(evaluated, { timeout: 180_000 }).toBeGreaterThan(0.85);

  // Stop, then the checkpoint: evaluated with the CPU reference on the held-out digits.
  await admin.getByTestId("stop-run").click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "stopped");
  const [download] = await Promise.all([
    admin.waitForEvent("download"),
    admin.getByTestId("checkpoint").click(),
  ]);
  const file = testInfo.outputPath(download.suggestedFilename());
  await download.saveAs(file);
  const decoded = decodeMessage(new Uint8Array(readFileSync(file)));
  expect(decoded.ok).toBe(true);
  if (!decoded.ok || decoded.message.payload.type !== "welcome")
    throw new Error("not a checkpoint");
  const { model, parameters, version } = decoded.message.payload;
  const layout = parameterLayout(model);
  const params = new Float32Array(layout.size);
  for (const [i, slot] of layout.slots.entries())
    params.set(parameters[i]!.data as Float32Array, slot.offset);
  const { accuracy } = evaluate(model, params, loadMnist().test);
  const status = (await (await server.api(`/api/runs/${runId}`)).json()) as RunStatus;
  expect(version).toBe(status.version);
  expect(accuracy).toBeGreaterThan(0.8);
  if (status.evaluation?.version === version)
    expect(accuracy).toBeCloseTo(status.evaluation.accuracy, 9);
  await context.close();
});
