// The worker thread's side of threadEvaluator: decodes each dataset once (by hash) and runs
// evaluations to completion, while the coordinator's event loop carries on.

import { parentPort } from "node:worker_threads";
import { decodeShard } from "@pangea/shared";
import { runEvaluation } from "../core/evaluation.ts";
import type { EvaluationReply, EvaluationRequest } from "./evaluation-thread.ts";

const datasets = new Map<string, ReturnType<typeof decodeShard>>();

parentPort!.on("message", (m: EvaluationRequest) => {
  let reply: EvaluationReply;
  try {
    if (m.bytes) datasets.set(m.sha256, decodeShard(m.bytes, m.name));
    const shard = datasets.get(m.sha256);
    if (!shard) throw new Error(`dataset ${m.name} (${m.sha256.slice(0, 12)}…) was not sent`);
    const result = runEvaluation({
      runId: m.runId,
      version: m.version,
      model: m.model,
      parameters: m.parameters,
      seed: m.seed,
      data: { name: m.name, sha256: m.sha256, bytes: new Uint8Array(0), shard },
    });
    reply = { id: m.id, result };
  } catch (e) {
    reply = { id: m.id, error: e instanceof Error ? e.message : String(e) };
  }
  parentPort!.postMessage(reply);
});
