// Evaluation on Node, in a worker thread: a GPT's held-out loss and text sample take the float64
// reference seconds, which must not stall the coordinator's event loop (frames, commits,
// heartbeats). One thread, one job at a time (each run has at most one in flight); the thread is
// started on the first job and does not keep the process alive.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { ModelSpec } from "@pangea/shared";
import type { EvaluationJob, EvaluationResult, Evaluator } from "../core/evaluation.ts";

export interface EvaluationRequest {
  id: number;
  runId: string;
  version: number;
  model: ModelSpec;
  parameters: Float32Array;
  seed: number;
  name: string;
  sha256: string;
  /** The shard's bytes, the first time the thread needs this dataset. */
  bytes?: Uint8Array;
}

export type EvaluationReply =
  | { id: number; result: EvaluationResult }
  | { id: number; error: string };

/** An Evaluator that runs each job on a worker thread. `close()` ends the thread. */
export function threadEvaluator(): Evaluator & { close(): Promise<void> } {
  let worker: Worker | undefined;
  let sent = new Set<string>();
  let next = 0;
  const waiting = new Map<
    number,
    { resolve: (r: EvaluationResult) => void; reject: (e: Error) => void }
  >();
  const start = (): Worker => {
    // The thread runs TypeScript as the rest of the coordinator does: it registers tsx's loader
    // first (Node 20 does not pass a parent's --import hooks to a worker's entry).
    const require = createRequire(import.meta.url);
    const tsx = new URL("./esm/api/index.mjs", pathToFileURL(require.resolve("tsx"))).href;
    const entry = new URL("./evaluation-worker.ts", import.meta.url).href;
    const w = new Worker(
      `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`,
      { eval: true },
    );
    w.unref();
    w.on("message", (reply: EvaluationReply) => {
      const p = waiting.get(reply.id);
      waiting.delete(reply.id);
      if (!p) return;
      if ("error" in reply) p.reject(new Error(reply.error));
      else p.resolve({ ...reply.result, where: "on a worker thread, off its event loop" });
    });
    // A thread that dies fails what it held; the next job starts a new one.
    const fail = (e: Error) => {
      for (const p of waiting.values()) p.reject(e);
      waiting.clear();
      worker = undefined;
      sent = new Set();
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`the evaluation thread exited (${code})`)));
    return w;
  };
  const evaluate = (job: EvaluationJob): Promise<EvaluationResult> => {
    worker ??= start();
    const id = ++next;
    const first = !sent.has(job.data.sha256);
    sent.add(job.data.sha256);
    const request: EvaluationRequest = {
      id,
      runId: job.runId,
      version: job.version,
      model: job.model,
      parameters: job.parameters,
      seed: job.seed,
      name: job.data.name,
      sha256: job.data.sha256,
      ...(first ? { bytes: job.data.bytes } : {}),
    };
    const result = new Promise<EvaluationResult>((resolve, reject) =>
      waiting.set(id, { resolve, reject }),
    );
    // The parameters are the job's own copy: moved, not copied again.
    worker.postMessage(request, [job.parameters.buffer as ArrayBuffer]);
    return result;
  };
  return Object.assign(evaluate, {
    async close() {
      const w = worker;
      worker = undefined;
      if (w) await w.terminate();
    },
  });
}
