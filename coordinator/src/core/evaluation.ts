// The coordinator's own measure of a version: held-out loss and accuracy (nats per character
// for text), and for a language model a text sample generated from that version. It never runs
// inside a commit: a GPT's evaluation on the CPU takes seconds, so it is a job of small steps
// (one window, one generated token, or 250 images each) that an Evaluator runs off the event
// loop (a worker thread on Node) or a step per turn of it (the edge, the default); the simulation
// runs it at once, so that its order of events stays deterministic.
import {
  generate,
  type HeldOutMeasure,
  measureHeldOut,
  promptTokens,
  validationWindows,
} from "@pangea/shaders/reference";
import { decodeText, type HeldOut, type ModelSpec, seededRandom } from "@pangea/shared";
import type { RunData } from "./datasets.ts";

export interface EvaluationResult {
  /** Mean held-out cross-entropy, in nats (per character, for text). */
  loss: number;
  /** Held-out accuracy: of images, or of next characters. */
  accuracy: number;
  /** Text generated from the version after the prompt (language models only). */
  sample?: string;
  /** What was measured, for the dashboard ("1,000 held-out images", "32 windows of 64 …"). */
  measured: string;
  /** How it was run, for the dashboard (set by the evaluator; none when inline). */
  where?: string;
}

export interface EvaluationJob {
  runId: string;
  version: number;
  model: ModelSpec;
  /** A copy: the run moves on while the job runs. */
  parameters: Float32Array;
  /** The run's dataset (its bytes and hash let another thread decode it once and keep it). */
  data: Pick<RunData, "name" | "bytes" | "sha256" | "shard">;
  /** The run's seed: the same held-out windows and sampling stream at every version. */
  seed: number;
}

/** Runs a job to its result, synchronously or not; the coordinator takes either. */
export type Evaluator = (job: EvaluationJob) => EvaluationResult | Promise<EvaluationResult>;

/** Held-out windows per text evaluation, and characters per sample. */
export const TEXT_EVAL_WINDOWS = 32;
export const SAMPLE_CHARACTERS = 160;
const PROMPT = "ROMEO:";
const IMAGE_STEP = 250;

/**
 * What an evaluation measures, in parts: held-out loss parts of at most `windows` text windows
 * (or IMAGE_STEP test images) each, then, for text, the sample. The coordinator steps through
 * them one window at a time; evaluation leases hand them to contributors a few windows at once.
 * Either way the parts cover the same images and windows, so their sums are the same numbers.
 */
export function evaluationParts(
  job: Pick<EvaluationJob, "model" | "data" | "seed">,
  windows: number,
): HeldOut[] {
  const shard = job.data.shard;
  const part = (offsets: number[]): HeldOut => ({ offsets, sampleTokens: 0, prompt: "", seed: 0 });
  const chunks = (all: number[], size: number) =>
    Array.from({ length: Math.ceil(all.length / size) }, (_, i) =>
      part(all.slice(i * size, (i + 1) * size)),
    );
  if (shard.kind === "images")
    return chunks(
      Array.from({ length: shard.test.count }, (_, i) => i),
      IMAGE_STEP,
    );
  const T = job.model.transformer?.contextLength;
  if (!T) throw new Error("a text dataset needs a transformer model");
  const starts = validationWindows(shard.corpus.validation.length, T, job.seed, TEXT_EVAL_WINDOWS);
  return [
    ...chunks(starts, windows),
    { offsets: [], sampleTokens: SAMPLE_CHARACTERS, prompt: PROMPT, seed: job.seed ^ 0x2545f491 },
  ];
}

/** The evaluation's result from its parts' measures (in the order of `evaluationParts`). */
export function combineParts(
  job: Pick<EvaluationJob, "model" | "data">,
  parts: readonly HeldOut[],
  measures: readonly HeldOutMeasure[],
): EvaluationResult {
  let loss = 0;
  let correct = 0;
  let count = 0;
  let sample: string | undefined;
  for (const [i, p] of parts.entries()) {
    const m = measures[i]!;
    if (p.sampleTokens > 0) sample = m.sample;
    loss += m.loss;
    correct += m.correct;
    count += p.offsets.length;
  }
  const shard = job.data.shard;
  if (shard.kind === "images")
    return { loss: loss / count, accuracy: correct / count, measured: `${count} held-out images` };
  const T = job.model.transformer!.contextLength;
  return {
    loss: loss / count,
    accuracy: correct / (count * T),
    ...(sample !== undefined ? { sample } : {}),
    measured: `${count} held-out windows of ${T} characters`,
  };
}

/** The evaluation as steps: each `yield` is a point where the caller may let others run. */
export function* evaluationSteps(job: EvaluationJob): Generator<void, EvaluationResult> {
  const { model, parameters } = job;
  const shard = job.data.shard;
  // One window (or 250 images) per step.
  const parts = evaluationParts(job, 1);
  const measures: HeldOutMeasure[] = [];
  for (const part of parts) {
    if (part.sampleTokens > 0 && shard.kind === "text") {
      // The sample a token per step: the same stream as measureHeldOut's in one call.
      const random = seededRandom(part.seed);
      const out = promptTokens(shard.corpus, part.prompt);
      for (let i = 0; i < part.sampleTokens; i++) {
        out.push(generate(model, parameters, out, 1, random)[0]!);
        yield;
      }
      measures.push({ loss: 0, correct: 0, sample: decodeText(shard.corpus, out) });
    } else {
      measures.push(measureHeldOut(model, parameters, shard, part));
      yield;
    }
  }
  return combineParts(job, parts, measures);
}

/** The whole evaluation at once (the simulation's evaluator, and a worker thread's). */
export function runEvaluation(job: EvaluationJob): EvaluationResult {
  const steps = evaluationSteps(job);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

const SLICED = "between its frames, one window or token per turn of its event loop";

/**
 * The default evaluator: a step per turn of the event loop, so that frames and timers are
 * handled between steps (each is one window's forward pass, one token or 250 images).
 */
export function slicedEvaluator(job: EvaluationJob): Promise<EvaluationResult> {
  const steps = evaluationSteps(job);
  return new Promise((resolve, reject) => {
    const turn = () => {
      try {
        const r = steps.next();
        if (r.done) resolve({ ...r.value, where: SLICED });
        else setTimeout(turn, 0);
      } catch (e) {
        reject(e);
      }
    };
    setTimeout(turn, 0);
  });
}
