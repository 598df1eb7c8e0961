// One tab training the 784-128-10 MLP on MNIST with the engine alone reaches 97% on the 1,000
// held-out digits. The accuracy is computed by the CPU reference from the engine's final
// parameters, not by the engine.
import { gatherBatch, initParameters, mnistMlp, seededRandom, jitterImages } from "@pangea/shared";
import { loadMnist } from "@pangea/shared/mnist";
import { expect, it } from "vitest";
import { evaluate } from "../reference/mlp.ts";
import { TrainingEngine } from "./engine.ts";

const BATCH = 64;
const EPOCHS = 16;
// Small random rotations, rescalings and shifts of each training digit (see augment.ts).
const JITTER = { maxRotation: 10, maxScale: 0.1, maxShift: 2 };
const TARGET = 0.97;

it("trains the MNIST MLP to 97% held-out accuracy on one tab", async () => {
  const { train, test } = loadMnist();
  const engine = await TrainingEngine.create(mnistMlp, { maxBatch: BATCH });
  engine.setParameters(initParameters(mnistMlp, 1));
  const order = Int32Array.from({ length: train.count }, (_, i) => i);
  const next = seededRandom(42);
  let accuracy = 0;
  const history: string[] = [];
  const started = performance.now();
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let loss = 0;
    let steps = 0;
    for (let start = 0; start + BATCH <= order.length; start += BATCH) {
      const batch = gatherBatch(train, order.subarray(start, start + BATCH));
      jitterImages(batch.inputs, 28, 28, JITTER, next);
      // AdamW, the learning rate decaying from 2e-3 to 0 on a cosine over the whole run.
      const progress = (epoch + start / order.length) / EPOCHS;
      const learningRate = 1e-3 * (1 + Math.cos(Math.PI * progress));
      const stats = await engine.train(batch.inputs, batch.labels, {
        kind: "adamw",
        learningRate,
        weightDecay: 1e-4,
      });
      loss += stats.loss;
      steps++;
    }
    const evaluated = evaluate(mnistMlp, await engine.parameters(), test);
    accuracy = evaluated.accuracy;
    history.push(
      `epoch ${epoch + 1}: train loss ${(loss / steps).toFixed(4)}, test loss ${evaluated.loss.toFixed(4)}, test accuracy ${(100 * accuracy).toFixed(1)}% (${((performance.now() - started) / 1000).toFixed(0)} s)`,
    );
    console.log(history.at(-1));
  }
  engine.destroy();
  expect(accuracy, history.join("\n")).toBeGreaterThanOrEqual(TARGET);
}, 900_000);
