// A version's step on a slice of a run's parameters: the aggregate of the version's votes and
// the run's optimizer, over the parameters [start, end) and their optimizer state.
//
// The step is coordinate-wise: the mean, the trimmed mean and the median (with or without
// buckets, whose shuffle depends only on the votes and the seed) and both optimizers (SGD and
// AdamW, weight decay per parameter) compute each parameter from that parameter's own values.
// So the step of a slice is the slice of the step, bit for bit, wherever the slice's edges fall.
// A run steps its whole vector as one slice; a run split into slices held apart (an object per
// slice on the edge) steps each where it lives and gets the same parameters.
//
// What is not coordinate-wise needs the whole update and is not a slice's to do: CenteredClip
// (its distances are over the whole vector) and clipping by norm (the clip factor comes from
// the whole update's norm, passed in as AggregateOptions.clipNorm only where the votes are whole).
import { type AggregateOptions, aggregate, type WeightedUpdate } from "@pangea/shared";
import type { ServerOptimizerConfig } from "./run-config.ts";
import { applyUpdate, type OptimizerState, type StepTarget } from "./server-optimizer.ts";

export interface ParameterRange {
  start: number;
  end: number;
}

/** `size` parameters in `count` consecutive ranges, as equal as whole parameters allow. */
export function parameterRanges(size: number, count: number): ParameterRange[] {
  if (!Number.isInteger(count) || count < 1) throw new Error("a vector splits into ≥ 1 ranges");
  const ranges: ParameterRange[] = [];
  for (let i = 0; i < count; i++)
    ranges.push({
      start: Math.floor((size * i) / count),
      end: Math.floor((size * (i + 1)) / count),
    });
  return ranges;
}

/** The bits [start, end) of a weight-decay mask (model-spec's decayMask), from bit 0. */
export function sliceMask(mask: Uint32Array, { start, end }: ParameterRange): Uint32Array {
  const out = new Uint32Array(Math.ceil((end - start) / 32));
  for (let i = start; i < end; i++)
    if ((mask[i >>> 5]! >>> (i & 31)) & 1) out[(i - start) >>> 5]! |= 1 << ((i - start) & 31);
  return out;
}

/** The aggregation rules a slice can apply alone (see the top of this file). */
export function coordinatewise(options: AggregateOptions): boolean {
  return options.kind !== "centeredClip" && !(options.clipNorm ?? 0);
}

/**
 * A slice's parameters and optimizer state, stepped one version at a time. Each step writes into
 * spare arrays, swapped in only when the step is finite: a bad step is thrown away without
 * copying anything aside. Hold `params` and `optimizer` only within one event: the next step
 * reuses the arrays they were.
 */
export class ParameterSlice {
  params: Float32Array;
  optimizer: OptimizerState;
  private spare: StepTarget | undefined;
  /** The aggregate as one flat array, reused version after version. */
  private scratch: Float32Array | undefined;

  constructor(
    params: Float32Array,
    optimizer: OptimizerState,
    /** The weight-decay bits of this slice's parameters, from bit 0 (sliceMask). */
    private readonly decay: Uint32Array,
  ) {
    this.params = params;
    this.optimizer = optimizer;
  }

  /**
   * One version's step from its votes, whose tensors are pieces that tile this slice in order
   * (a whole run's: its layout's tensors; a shard's: one array of its range). False when the step
   * was not finite, and then nothing changed.
   */
  step(
    votes: readonly WeightedUpdate[],
    options: AggregateOptions,
    config: ServerOptimizerConfig,
  ): boolean {
    const agg = aggregate(votes, options);
    const before = this.params;
    this.scratch ??= new Float32Array(before.length);
    const update = this.scratch;
    let offset = 0;
    for (const t of agg) {
      update.set(t, offset);
      offset += t.length;
    }
    if (offset !== before.length)
      throw new Error(`votes of ${offset} values for a slice of ${before.length}`);
    this.spare ??= {
      params: new Float32Array(before.length),
      m: new Float32Array(this.optimizer.m.length),
      v: new Float32Array(this.optimizer.v.length),
    };
    const spare = this.spare;
    const state = { step: this.optimizer.step, m: this.optimizer.m, v: this.optimizer.v };
    if (!applyUpdate(config, before, state, update, this.decay, spare)) return false;
    this.spare = { params: before, m: this.optimizer.m, v: this.optimizer.v };
    this.params = spare.params;
    this.optimizer = { step: state.step, m: spare.m, v: spare.v };
    return true;
  }
}
