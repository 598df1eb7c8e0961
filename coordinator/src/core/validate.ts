// Every update is checked before it touches anything. A refusal names its reason as the wire's
// ErrorCode and says, in a sentence, what was wrong; nothing of the run changes.
import type { ErrorCode, GradientUpdate, ParameterLayout, Payload } from "@pangea/shared";
import type { StrategyConfig } from "./run-config.ts";
import type { Lease } from "./scheduler.ts";

export type Refusal = { code: ErrorCode; message: string };

/** The wire's error message: `ref` names the refused message, `retryAfterMs` when to ask again. */
export function errorPayload(
  code: ErrorCode,
  message: string,
  options: { ref?: string; retryAfterMs?: number } = {},
): Payload {
  return {
    type: "error",
    code,
    message,
    ref: options.ref ?? "",
    retryAfterMs: options.retryAfterMs ?? 0,
  };
}

export type Checked =
  | { ok: true; tensors: Float32Array[]; norm: number }
  | ({ ok: false } & Refusal);

export interface UpdateContext {
  sessionId: string;
  /** The live lease the update names, if there is one. */
  lease: Lease | undefined;
  now: number;
  version: number;
  strategy: StrategyConfig;
  layout: ParameterLayout;
  maxNorm: number;
  /** The samples the lease's batch holds: what the update must say it trained on. */
  samples: number;
  /** The inner steps the run asks for (1 unless localSgd). */
  innerSteps: number;
  /**
   * The update is a copy of a batch whose other copy is in (redundancy): it is compared, never
   * aggregated, so it may come from a closed version, but only from its lease's.
   */
  copy?: boolean;
}

const refuse = (code: ErrorCode, message: string): Checked => ({ ok: false, code, message });

/** The staleness the strategy accepts for an update from `base` when the run is at `version`. */
export function staleness(
  strategy: StrategyConfig,
  base: number,
  version: number,
): Refusal | undefined {
  if (base > version)
    return { code: "staleVersion", message: `version ${base} is ahead of the run's ${version}` };
  const limit = strategy.kind === "asynchronous" ? strategy.maxStaleness : 0;
  if (version - base > limit)
    return {
      code: "staleVersion",
      message: `the update starts from version ${base}; the run is at ${version} and accepts ${limit === 0 ? "only the current version" : `at most ${limit} versions back`}`,
    };
  return undefined;
}

export function checkUpdate(u: GradientUpdate, ctx: UpdateContext): Checked {
  return check(u, ctx, true);
}

/**
 * What an update says about its lease (whose it is, its version, samples, batch, inner steps,
 * loss, kind), checked against what the coordinator handed out. A declaration for reduction
 * among peers is checked by this alone: it carries no tensors.
 */
export function checkClaim(u: GradientUpdate, ctx: UpdateContext): Refusal | undefined {
  const r = check(u, ctx, false);
  return r.ok ? undefined : r;
}

function check(u: GradientUpdate, ctx: UpdateContext, tensorsToo: boolean): Checked {
  const { lease } = ctx;
  // One message for "never yours" and "gone": a stranger learns nothing about other leases.
  if (!lease || lease.sessionId !== ctx.sessionId)
    return refuse("unknownLease", `lease ${u.leaseId} is not a live lease of this session`);
  if (lease.deadline <= ctx.now)
    return refuse("leaseExpired", `lease ${u.leaseId} expired ${ctx.now - lease.deadline} ms ago`);
  // A worker that had not yet received the lease's version says which one it trained from.
  if (u.baseVersion > lease.baseVersion)
    return refuse(
      "staleVersion",
      `lease ${u.leaseId} was for version ${lease.baseVersion}, the update claims ${u.baseVersion}`,
    );
  if (ctx.copy && u.baseVersion !== lease.baseVersion)
    return refuse(
      "staleVersion",
      `lease ${u.leaseId} is a copy from version ${lease.baseVersion}; the update claims ${u.baseVersion}`,
    );
  const stale = ctx.copy ? undefined : staleness(ctx.strategy, u.baseVersion, ctx.version);
  if (stale) return { ok: false, ...stale };
  // A contributor's claims are checked against what the coordinator handed out, never used:
  // the update's weight and the session's credit come from the lease.
  if (u.sampleCount !== ctx.samples)
    return refuse(
      "claimMismatch",
      `lease ${u.leaseId} handed out ${ctx.samples} samples; the update claims ${u.sampleCount}`,
    );
  // Data by reference: the lease named the batch; an update that says it trained on another
  // one (its own choice of data) is not the work that was handed out.
  const batchId = `${lease.epoch}:${lease.batch}`;
  if (u.batchId !== batchId)
    return refuse(
      "claimMismatch",
      `lease ${u.leaseId} named batch ${batchId}; the update claims ${JSON.stringify(u.batchId.slice(0, 40))}`,
    );
  if ((u.innerSteps || 1) !== ctx.innerSteps)
    return refuse(
      "claimMismatch",
      `the run asks for ${ctx.innerSteps} inner steps; the update claims ${u.innerSteps}`,
    );
  if (!Number.isFinite(u.loss)) return refuse("nonFinite", "the update's loss is not finite");
  const want = ctx.strategy.kind === "localSgd" ? "parameterDelta" : "gradient";
  if (u.kind !== want)
    return refuse("unsupportedMessage", `this run's strategy takes ${want} updates, not ${u.kind}`);
  if (!tensorsToo) return { ok: true, tensors: [], norm: 0 };
  const slots = ctx.layout.slots;
  if (u.gradients.length !== slots.length)
    return refuse("shapeMismatch", `expected ${slots.length} tensors, got ${u.gradients.length}`);
  const tensors: Float32Array[] = [];
  let sum = 0;
  for (const [i, slot] of slots.entries()) {
    const t = u.gradients[i]!;
    if (t.name && t.name !== slot.name)
      return refuse("shapeMismatch", `tensor ${i} is ${t.name}, expected ${slot.name}`);
    if (t.shape.length !== slot.shape.length || t.shape.some((d, j) => d !== slot.shape[j]))
      return refuse(
        "shapeMismatch",
        `${slot.name} has shape [${t.shape}], expected [${slot.shape}]`,
      );
    if (!(t.data instanceof Float32Array) || t.data.length !== slot.size)
      return refuse("shapeMismatch", `${slot.name} must hold ${slot.size} float values`);
    sum += sumOfSquares(t.data);
    tensors.push(t.data);
  }
  // A NaN or ±Inf anywhere makes the sum non-finite: one pass checks both.
  if (!Number.isFinite(sum)) return refuse("nonFinite", "the update holds NaN or infinite values");
  const norm = Math.sqrt(sum);
  if (norm > ctx.maxNorm)
    return refuse(
      "normTooLarge",
      `the update's norm ${norm.toPrecision(4)} exceeds the run's bound ${ctx.maxNorm}`,
    );
  return { ok: true, tensors, norm };
}

/**
 * Σ x², in float64 with four independent partial sums: one long chain of dependent additions
 * runs at a quarter of the speed, and this loop is most of an update's validation.
 */
export function sumOfSquares(d: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = d.length - (d.length % 4);
  for (let j = 0; j < n; j += 4) {
    const a = d[j]!;
    const b = d[j + 1]!;
    const c = d[j + 2]!;
    const e = d[j + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += e * e;
  }
  for (let j = n; j < d.length; j++) s0 += d[j]! * d[j]!;
  return s0 + s1 + s2 + s3;
}
