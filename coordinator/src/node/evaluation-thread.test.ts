// The worker-thread evaluator gives the same result as the inline one, while the event loop
// stays free: a timer keeps firing during a GPT evaluation that takes the thread seconds.
import { decodeShard, initParameters, shakespeareGpt } from "@pangea/shared";
import { tinyShakespeareShard } from "@pangea/shared/text-node";
import { describe, expect, it } from "vitest";
import { type EvaluationJob, runEvaluation } from "../core/evaluation.ts";
import { threadEvaluator } from "./evaluation-thread.ts";

describe("threadEvaluator", () => {
  it("evaluates a GPT off the event loop, with the inline evaluator's result", async () => {
    const bytes = tinyShakespeareShard();
    const job = (): EvaluationJob => ({
      runId: "r",
      version: 3,
      model: shakespeareGpt,
      parameters: initParameters(shakespeareGpt, 1),
      seed: 7,
      data: { name: "shakespeare", bytes, sha256: "h", shard: decodeShard(bytes, "shakespeare") },
    });
    const evaluator = threadEvaluator();
    try {
      let longest = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        longest = Math.max(longest, now - last);
        last = now;
      }, 5);
      const started = performance.now();
      const result = await evaluator(job());
      const took = performance.now() - started;
      clearInterval(timer);
      // The inline result, and the thread says where it ran.
      const inline = { ...runEvaluation(job()), where: "on a worker thread, off its event loop" };
      expect(result).toEqual(inline);
      expect(result.sample!.startsWith("ROMEO:")).toBe(true);
      expect(result.loss).toBeCloseTo(Math.log(65), 0);
      // The thread took its time; the loop here never waited long for it.
      console.log(
        `evaluation: ${took.toFixed(0)} ms on the thread, longest loop gap ${longest.toFixed(0)} ms`,
      );
      expect(longest).toBeLessThan(Math.max(200, took / 4));
      // A second job reuses the decoded dataset (its bytes are not sent again).
      expect(await evaluator(job())).toEqual(inline);
    } finally {
      await evaluator.close();
    }
  });
});
