// The CPU references of the transformer's kernels, in float64, with the conventions of ops.ts:
// row-major, llm.c's names (`dout` the gradient of the loss with respect to an op's output).
// Activations are [B·T, C] with the row b·T + t; attention reads one [B·T, 3C] matrix holding
// q, k and v side by side, head h in columns h·hs .. (h+1)·hs of each third (hs = C / H).
import type { Floats } from "./ops.ts";

/** out[b,t,:] = wte[tokens[b,t], :] + wpe[t, :]. Reference of embedding.wgsl's forward. */
export function embeddingForward(
  tokens: Int32Array,
  wte: Floats,
  wpe: Floats,
  B: number,
  T: number,
  C: number,
): Float64Array {
  const out = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * C;
      const token = tokens[b * T + t]! * C;
      for (let c = 0; c < C; c++) out[row + c] = wte[token + c]! + wpe[t * C + c]!;
    }
  }
  return out;
}

/** The embedding's gradients: dwte[v] = Σ over positions holding token v, dwpe[t] = Σ over b. */
export function embeddingBackward(
  tokens: Int32Array,
  dout: Floats,
  B: number,
  T: number,
  C: number,
  V: number,
): { dwte: Float64Array; dwpe: Float64Array } {
  const dwte = new Float64Array(V * C);
  const dwpe = new Float64Array(T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * C;
      const token = tokens[b * T + t]! * C;
      for (let c = 0; c < C; c++) {
        dwte[token + c]! += dout[row + c]!;
        dwpe[t * C + c]! += dout[row + c]!;
      }
    }
  }
  return { dwte, dwpe };
}

export const LAYERNORM_EPSILON = 1e-5;

/** out = (x − mean) · rstd · weight + bias per row, with the rows' mean and rstd = 1/√(var + ε). */
export function layernormForward(
  inp: Floats,
  weight: Floats,
  bias: Floats,
  N: number,
  C: number,
): { out: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const out = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const row = i * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[row + c]!;
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (inp[row + c]! - m) ** 2;
    const s = 1 / Math.sqrt(v / C + LAYERNORM_EPSILON);
    for (let c = 0; c < C; c++) out[row + c] = (inp[row + c]! - m) * s * weight[c]! + bias[c]!;
    mean[i] = m;
    rstd[i] = s;
  }
  return { out, mean, rstd };
}

/**
 * LayerNorm's gradients: with n = (x − mean)·rstd and dn = dout·weight,
 * dinp = rstd·(dn − mean(dn) − n·mean(dn·n)), dweight = Σ_rows dout·n, dbias = Σ_rows dout.
 */
export function layernormBackward(
  inp: Floats,
  weight: Floats,
  mean: Floats,
  rstd: Floats,
  dout: Floats,
  N: number,
  C: number,
): { dinp: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const dinp = new Float64Array(N * C);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  for (let i = 0; i < N; i++) {
    const row = i * C;
    const m = mean[i]!;
    const s = rstd[i]!;
    let dnMean = 0;
    let dnNMean = 0;
    for (let c = 0; c < C; c++) {
      const n = (inp[row + c]! - m) * s;
      const dn = dout[row + c]! * weight[c]!;
      dnMean += dn;
      dnNMean += dn * n;
      dweight[c]! += dout[row + c]! * n;
      dbias[c]! += dout[row + c]!;
    }
    dnMean /= C;
    dnNMean /= C;
    for (let c = 0; c < C; c++) {
      const n = (inp[row + c]! - m) * s;
      const dn = dout[row + c]! * weight[c]!;
      dinp[row + c] = s * (dn - dnMean - n * dnNMean);
    }
  }
  return { dinp, dweight, dbias };
}

/**
 * Causal multi-head self-attention: for each b, h and query t,
 * out[t] = Σ_{s ≤ t} softmax_s(q_t·k_s / √hs) · v_s, and lse[b,h,t] = log Σ_{s ≤ t} exp(q_t·k_s / √hs)
 * (what the backward needs to rebuild the probabilities without storing them).
 */
export function attentionForward(
  qkv: Floats,
  B: number,
  T: number,
  C: number,
  H: number,
): { out: Float64Array; lse: Float64Array } {
  const hs = C / H;
  const scale = 1 / Math.sqrt(hs);
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * H * T);
  const scores = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * hs;
        let max = Number.NEGATIVE_INFINITY;
        for (let s = 0; s <= t; s++) {
          const k = (b * T + s) * 3 * C + C + h * hs;
          let dot = 0;
          for (let d = 0; d < hs; d++) dot += qkv[q + d]! * qkv[k + d]!;
          scores[s] = dot * scale;
          if (scores[s]! > max) max = scores[s]!;
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += Math.exp(scores[s]! - max);
        lse[(b * H + h) * T + t] = max + Math.log(sum);
        const o = (b * T + t) * C + h * hs;
        for (let s = 0; s <= t; s++) {
          const p = Math.exp(scores[s]! - max) / sum;
          const v = (b * T + s) * 3 * C + 2 * C + h * hs;
          for (let d = 0; d < hs; d++) out[o + d]! += p * qkv[v + d]!;
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Attention's gradient with respect to qkv, from the probabilities P (rebuilt from lse):
 * dP = dout·vᵀ, dS = P ⊙ (dP − rowsum(dout ⊙ out)), dq = dS·k/√hs, dk = dSᵀ·q/√hs, dv = Pᵀ·dout.
 */
export function attentionBackward(
  qkv: Floats,
  out: Floats,
  lse: Floats,
  dout: Floats,
  B: number,
  T: number,
  C: number,
  H: number,
): Float64Array {
  const hs = C / H;
  const scale = 1 / Math.sqrt(hs);
  const dqkv = new Float64Array(B * T * 3 * C);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * hs;
        const o = (b * T + t) * C + h * hs;
        let delta = 0;
        for (let d = 0; d < hs; d++) delta += dout[o + d]! * out[o + d]!;
        const l = lse[(b * H + h) * T + t]!;
        for (let s = 0; s <= t; s++) {
          const k = (b * T + s) * 3 * C + C + h * hs;
          const v = k + C;
          let dot = 0;
          let dp = 0;
          for (let d = 0; d < hs; d++) {
            dot += qkv[q + d]! * qkv[k + d]!;
            dp += dout[o + d]! * qkv[v + d]!;
          }
          const p = Math.exp(dot * scale - l);
          const ds = p * (dp - delta) * scale;
          for (let d = 0; d < hs; d++) {
            dqkv[q + d]! += ds * qkv[k + d]!;
            dqkv[k + d]! += ds * qkv[q + d]!;
            dqkv[v + d]! += p * dout[o + d]!;
          }
        }
      }
    }
  }
  return dqkv;
}

/** out = a + b. Reference of residual.wgsl. */
export function residualForward(a: Floats, b: Floats): Float64Array {
  return Float64Array.from(a, (x, i) => x + b[i]!);
}

// Dropout's generator: counter-based, so element i's decision is a pure function of (seed,
// stream, i) and every side (the WGSL kernel, this reference, a replaying tab) draws the same
// mask without state. The hash is Chris Wellons' lowbias32; dropout.wgsl computes it in u32.

/** lowbias32: a 32-bit integer hash with low bias. */
export function hash32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The u32 below which a draw drops its element, for a drop probability p in [0, 1). */
export function dropThreshold(p: number): number {
  return Math.min(0xffffffff, Math.floor(p * 4294967296));
}

/** The key of one dropout site for one step: what dropout.wgsl takes as its uniform `key`. */
export function dropoutKey(seed: number, stream: number): number {
  return hash32((seed ^ Math.imul(stream, 0x9e3779b9)) >>> 0);
}

/** The dropout mask: 0 where element i is dropped, 1/(1 − p) where it is kept. */
export function dropoutMask(key: number, p: number, n: number): Float64Array {
  const mask = new Float64Array(n);
  if (p <= 0) return mask.fill(1);
  const threshold = dropThreshold(p);
  const keep = 1 / (1 - p);
  for (let i = 0; i < n; i++) mask[i] = hash32((i ^ key) >>> 0) >= threshold ? keep : 0;
  return mask;
}

/** out = inp ⊙ mask (and dinp = dout ⊙ mask). Reference of dropout.wgsl. */
export function dropoutForward(inp: Floats, key: number, p: number): Float64Array {
  const mask = dropoutMask(key, p, inp.length);
  return Float64Array.from(inp, (x, i) => x * mask[i]!);
}
