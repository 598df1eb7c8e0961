// Synthetic classification data for tests: `classes` Gaussian blobs in `width` dimensions with
// seeded centers. Separable enough that a small MLP learns it in a few hundred steps.
import { seededRandom } from "../random.ts";
import type { Dataset } from "./dataset.ts";

export function syntheticBlobs(options: {
  count: number;
  width: number;
  classes: number;
  seed?: number;
  spread?: number;
}): Dataset {
  const { count, width, classes } = options;
  const next = seededRandom(options.seed ?? 1);
  const spread = options.spread ?? 0.5;
  const centers = new Float32Array(classes * width).map(() => next() * 2 - 1);
  const gaussian = () => {
    // Box–Muller
    const u = Math.max(next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  };
  const inputs = new Float32Array(count * width);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % classes;
    labels[i] = c;
    for (let j = 0; j < width; j++)
      inputs[i * width + j] = centers[c * width + j]! + (spread * gaussian()) / Math.sqrt(width);
  }
  return { name: `blobs-${classes}x${width}`, inputShape: [width], classes, count, inputs, labels };
}
