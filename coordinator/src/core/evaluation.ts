// The coordinator's own measure of a version: held-out loss and accuracy (nats per character
// for text), and for a language model a text sample generated from that version. It never runs
// inside a commit: a GPT's evaluation on the CPU takes seconds, so it is a job of small steps
// (one window, one generated token, or 250 images each) that an Evaluator runs off the event
// loop (a worker thread on Node) or a step per turn of it (the edge, the default); the simulation
// runs it at once, so that its order of events stays deterministic.
import { evaluate, evaluateText, generate } from "@pangea/shaders/reference";
import { decodeText, encodeText, type ModelSpec, seededRandom } from "@pangea/shared";
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

/** The evaluation as steps: each `yield` is a point where the caller may let others run. */
export function* evaluationSteps(job: EvaluationJob): Generator<void, EvaluationResult> {
  const { model, parameters } = job;
  const shard = job.data.shard;
  if (shard.kind === "images") {
    const test = shard.test;
    const w = test.inputShape.reduce((a, b) => a * b, 1);
    let loss = 0;
    let correct = 0;
    for (let start = 0; start < test.count; start += IMAGE_STEP) {
      const n = Math.min(IMAGE_STEP, test.count - start);
      const part = {
        ...test,
        count: n,
        inputs: test.inputs.subarray(start * w, (start + n) * w),
        labels: test.labels.subarray(start, start + n),
      };
      const e = evaluate(model, parameters, part);
      loss += e.loss * n;
      correct += e.accuracy * n;
      yield;
    }
    return {
      loss: loss / test.count,
      accuracy: correct / test.count,
      measured: `${test.count} held-out images`,
    };
  }
  const tf = model.transformer;
  if (!tf) throw new Error("a text dataset needs a transformer model");
  const T = tf.contextLength;
  const tokens = shard.corpus.validation;
  let loss = 0;
  let accuracy = 0;
  // The reference's evaluateText, one window per step (the same windows as in one call).
  for (let w = 0; w < TEXT_EVAL_WINDOWS; w++) {
    const r = evaluateText(model, parameters, tokens, 1, job.seed + w, 1);
    loss += r.loss;
    accuracy += r.accuracy;
    yield;
  }
  // The sample: from the prompt when the vocabulary spells it, else from the first character.
  let prompt: number[];
  try {
    prompt = encodeText(shard.corpus, PROMPT);
  } catch {
    prompt = [0];
  }
  const random = seededRandom(job.seed ^ 0x2545f491);
  const out = [...prompt];
  for (let i = 0; i < SAMPLE_CHARACTERS; i++) {
    out.push(generate(model, parameters, out, 1, random)[0]!);
    yield;
  }
  return {
    loss: loss / TEXT_EVAL_WINDOWS,
    accuracy: accuracy / TEXT_EVAL_WINDOWS,
    sample: decodeText(shard.corpus, out),
    measured: `${TEXT_EVAL_WINDOWS} held-out windows of ${T} characters`,
  };
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
