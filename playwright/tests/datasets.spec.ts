// A researcher's own data in, a standard checkpoint out, all from the dashboard: a text file is
// uploaded (after a refused one), listed, a GPT run is created on it and trained by two tabs,
// and the safetensors checkpoint downloaded from the run page holds the run's parameters under
// their layout names with the run's state in its metadata.
import { readFileSync } from "node:fs";
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { decodeSafetensors, initParameters, parameterLayout } from "@pangea/shared";
import { expect, test } from "../support/fixtures.ts";
import { openContributor, type RunStatus, signIn } from "../support/pages.ts";

let server: ServerProcess;
test.beforeAll(async ({ backend }) => {
  server = await serverProcess({ backend });
});
test.afterAll(async () => {
  await server?.dispose();
});

// A small play: a few lines, over and over in varying order (about 12,000 characters).
const LINES = [
  "to be or not to be, that is the question.\n",
  "all the world's a stage, and all the men and women merely players.\n",
  "now is the winter of our discontent.\n",
  "a horse! a horse! my kingdom for a horse!\n",
];
const play = Array.from({ length: 240 }, (_, i) => LINES[(i * 7 + (i >> 2)) % 4]).join("");
const VOCABULARY = new Set(play).size;

test("upload a text, train a GPT on it with two tabs, download its safetensors checkpoint", async ({
  browser,
}, testInfo) => {
  const context = await browser.newContext();
  const admin = await context.newPage();
  await signIn(admin, server.url, server.token);

  // A file too short to split is refused with the coordinator's reason; nothing is listed.
  const panel = admin.getByTestId("datasets");
  await admin.getByTestId("dataset-name").fill("plays");
  await admin.getByTestId("dataset-file").setInputFiles({
    name: "short.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("to be or not to be"),
  });
  await admin.getByTestId("dataset-add").click();
  await expect(admin.getByTestId("dataset-problems")).toContainText("a dataset needs 1000");
  await expect(panel.locator('tr[data-dataset="plays"]')).toHaveCount(0);

  await admin.getByTestId("dataset-file").setInputFiles({
    name: "plays.txt",
    mimeType: "text/plain",
    buffer: Buffer.from(play),
  });
  await admin.getByTestId("dataset-add").click();
  await expect(panel.locator('tr[data-dataset="plays"]')).toContainText(`vocabulary ${VOCABULARY}`);

  // The GPT preset on the brought text: the model takes the text's vocabulary.
  await admin.getByTestId("preset-gpt").click();
  await admin.getByTestId("field-name").fill("plays GPT");
  await admin.getByTestId("field-dataset").selectOption("plays");
  await admin.getByTestId("field-batchSize").fill("8");
  await admin.getByTestId("field-targetUpdates").fill("2");
  await admin.getByTestId("field-versions").fill("40");
  // A corpus this small reaches the preset's target loss early: stop at 40 versions only.
  await admin.getByTestId("field-targetLoss").fill("0");
  await admin.getByTestId("create").click();
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "running");
  const runId = new URL(admin.url()).searchParams.get("run")!;
  const status = async () =>
    (await (await server.api(`/api/runs/${runId}`)).json()) as RunStatus & {
      config: { dataset: string; model: { transformer: { vocabSize: number } } };
    };
  expect((await status()).config.dataset).toBe("plays");
  expect((await status()).config.model.transformer.vocabSize).toBe(VOCABULARY);

  // Two tabs fetch the brought shard, check its hash and train the run to its 40 versions.
  const tabs = [
    await openContributor(context, server.url, runId),
    await openContributor(context, server.url, runId),
  ];
  await expect(admin.getByTestId("run-page")).toHaveAttribute("data-state", "finished", {
    timeout: 10 * 60_000,
  });
  for (const t of tabs) expect(await t.batches()).toBeGreaterThan(0);
  const final = await status();
  expect(final.version).toBe(40);
  expect(final.workers.filter((w) => w.updatesAccepted > 0)).toHaveLength(2);
  await expect.poll(async () => (await status()).evaluation?.version).toBe(40);
  const evaluation = (await status()).evaluation!;
  // It learned: below the loss of a uniform guess over the vocabulary.
  expect(evaluation.loss).toBeLessThan(Math.log(VOCABULARY));

  const [download] = await Promise.all([
    admin.waitForEvent("download"),
    admin.getByTestId("checkpoint-safetensors").click(),
  ]);
  expect(download.suggestedFilename()).toBe(`${runId}-v40.safetensors`);
  const file = testInfo.outputPath(download.suggestedFilename());
  await download.saveAs(file);
  const { tensors, metadata } = decodeSafetensors(new Uint8Array(readFileSync(file)));
  const model = JSON.parse(metadata["pangea.model"]!);
  const layout = parameterLayout(model);
  expect(tensors.map((t) => [t.name, t.shape])).toEqual(layout.slots.map((s) => [s.name, s.shape]));
  expect(metadata["pangea.version"]).toBe("40");
  expect(JSON.parse(metadata["pangea.evaluation"]!).loss).toBe(evaluation.loss);
  // The same bytes the API gives for the finished run, and trained away from the initial ones.
  const fromApi = new Uint8Array(
    await (await server.api(`/api/runs/${runId}/checkpoint?format=safetensors`)).arrayBuffer(),
  );
  expect(Buffer.compare(Buffer.from(fromApi), readFileSync(file))).toBe(0);
  const initial = initParameters(model, model.seed);
  const wte = tensors[0]!;
  expect(wte.data.some((v, i) => v !== initial[i])).toBe(true);
  await context.close();
});
