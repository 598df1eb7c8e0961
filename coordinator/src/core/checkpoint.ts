// Checkpoints out and in. Out: a run's parameters under their layout names, as one Cap'n Proto
// Message (a Welcome, which our codec and the C++ capnp tool read) or as safetensors (what
// PyTorch, JAX and Hugging Face read), with the model and the run's state. In: a run created from
// either form starts from its parameters (a fine-tune, or a run resumed elsewhere), once every
// tensor matches the model's layout by name, shape and finiteness.
import {
  decodeMessage,
  decodeSafetensors,
  encodeMessage,
  encodeSafetensors,
  type ModelSpec,
  parameterLayout,
} from "@pangea/shared";
import { HEARTBEAT_MS, trainingConfig } from "./coordinator.ts";
import { RunConfigError } from "./run-config.ts";
import type { Run } from "./run.ts";

export type CheckpointFormat = "capnp" | "safetensors";

/** The run's checkpoint in the format asked, with its file name. */
export function encodeCheckpoint(
  run: Run,
  format: CheckpointFormat,
  now: number,
  maxFrameBytes: number,
): { bytes: Uint8Array; fileName: string } {
  const base = `${run.id}-v${run.record.version}`;
  if (format === "safetensors")
    return {
      bytes: encodeSafetensors(
        run.parameterTensors().map((t) => ({
          name: t.name!,
          shape: t.shape,
          data: t.data as Float32Array,
        })),
        safetensorsMetadata(run),
      ),
      fileName: `${base}.safetensors`,
    };
  const bytes = encodeMessage({
    messageId: `checkpoint-${run.id}-${run.record.version}`,
    sender: "coordinator",
    recipient: "",
    timestamp: now,
    payload: {
      type: "welcome",
      runId: run.id,
      sessionId: "",
      sessionToken: "",
      model: run.config.model,
      version: run.record.version,
      parameters: run.parameterTensors(),
      training: trainingConfig(run.config),
      heartbeatMs: HEARTBEAT_MS,
      maxFrameBytes,
    },
  });
  return { bytes, fileName: `${base}.capnp` };
}

/** What a safetensors checkpoint says about itself: strings, as the format's metadata must be. */
function safetensorsMetadata(run: Run): Record<string, string> {
  const r = run.record;
  return {
    format: "pt",
    "pangea.run": r.id,
    "pangea.version": String(r.version),
    "pangea.model": JSON.stringify(run.config.model),
    "pangea.config": JSON.stringify(run.config),
    ...(r.evaluation ? { "pangea.evaluation": JSON.stringify(r.evaluation) } : {}),
  };
}

/** A checkpoint's tensors by name, and the model it says it holds. */
export interface ReadCheckpoint {
  tensors: { name: string; shape: number[]; data: ArrayLike<number> }[];
  model?: ModelSpec;
}

/** Reads either form (told apart by their first bytes), or says why it cannot. */
export function readCheckpoint(bytes: Uint8Array): ReadCheckpoint {
  // safetensors begins with its header's length and then the header's "{".
  if (bytes.byteLength >= 9 && bytes[8] === 0x7b) {
    let file: ReturnType<typeof decodeSafetensors>;
    try {
      file = decodeSafetensors(bytes);
    } catch (e) {
      throw new RunConfigError([`checkpoint: ${(e as Error).message}`]);
    }
    let model: ModelSpec | undefined;
    try {
      model = file.metadata["pangea.model"] ? JSON.parse(file.metadata["pangea.model"]) : undefined;
    } catch {
      throw new RunConfigError(["checkpoint: its pangea.model metadata is not JSON"]);
    }
    return { tensors: file.tensors, model };
  }
  const decoded = decodeMessage(bytes);
  if (!decoded.ok)
    throw new RunConfigError([
      `checkpoint: neither safetensors nor a Cap'n Proto checkpoint (${decoded.error.message})`,
    ]);
  const payload = decoded.message.payload;
  if (payload.type !== "welcome")
    throw new RunConfigError([
      `checkpoint: a Cap'n Proto ${payload.type} message, not a checkpoint (a welcome)`,
    ]);
  return {
    tensors: payload.parameters.map((t, i) => ({
      name: t.name ?? `tensor ${i}`,
      shape: t.shape,
      data: t.data,
    })),
    model: payload.model,
  };
}

/**
 * The checkpoint's parameters in the model's layout, or a RunConfigError with one sentence per
 * mismatch: a tensor the model lacks or has in another shape, one it has and the checkpoint
 * lacks, a value that is not finite.
 */
export function checkpointParameters(model: ModelSpec, checkpoint: ReadCheckpoint): Float32Array {
  const layout = parameterLayout(model);
  const byName = new Map(checkpoint.tensors.map((t) => [t.name, t]));
  const parameters = new Float32Array(layout.size);
  const problems: string[] = [];
  for (const slot of layout.slots) {
    const t = byName.get(slot.name);
    byName.delete(slot.name);
    if (!t) {
      problems.push(`checkpoint: it has no ${slot.name} (the model's is [${slot.shape}])`);
      continue;
    }
    if (t.shape.join(",") !== slot.shape.join(",") || t.data.length !== slot.size) {
      problems.push(`checkpoint: ${slot.name} is [${t.shape}]; the model's is [${slot.shape}]`);
      continue;
    }
    for (let i = 0; i < slot.size; i++) {
      const v = t.data[i]!;
      if (!Number.isFinite(v)) {
        problems.push(`checkpoint: ${slot.name} holds a value that is not finite (${v})`);
        break;
      }
      parameters[slot.offset + i] = v;
    }
  }
  for (const name of byName.keys())
    problems.push(`checkpoint: ${name} is not a tensor of the model`);
  if (problems.length > 0) throw new RunConfigError(problems);
  return parameters;
}
