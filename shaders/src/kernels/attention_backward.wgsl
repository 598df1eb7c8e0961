// attention_backward: the gradient of attention_forward with respect to qkv, FlashAttention-2's
// way: the probabilities are rebuilt from lse, P[t,s] = exp(q_t·k_s/√hs − lse_t), and never stored.
// With δ_t = dout_t·out_t and dS[t,s] = P[t,s]·(dout_t·v_s − δ_t):
//   query  one thread per query t: δ_t (kept in delta) and dq_t = Σ_{s ≤ t} dS[t,s]·k_s / √hs,
//          key tiles staged in workgroup memory as in the forward.
//   key    one thread per key s: dk_s = Σ_{t ≥ s} dS[t,s]·q_t / √hs and dv_s = Σ_{t ≥ s} P[t,s]·dout_t,
//          query tiles (q and dout rows) staged in workgroup memory. Runs after query (reads δ).
// Each thread writes only its own rows of dqkv: no atomics, fixed summation order.
// attention.wgsl is prepended. Dispatch: as the forward, for each entry point.
// CPU reference: attentionBackward.

@group(0) @binding(2) var<storage, read> out: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(6) var<storage, read_write> delta: array<f32>;

@compute @workgroup_size(64)
fn query(
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  let T = dims.T;
  let C = dims.C;
  let H = dims.H;
  let hs = C / H;
  let scale = inverseSqrt(f32(hs));
  for (var item = wid.x; item < blockCount(); item += groups.x) {
    let block = blockOf(item);
    let b = block.b;
    let h = block.h;
    let bh = block.bh;
    let t0 = block.first;
    let t = t0 + lid.x;
    let inRange = t < T;
    let row = b * T + min(t, T - 1u);
    var q: array<f32, MAX_HEAD>;
    var g: array<f32, MAX_HEAD>; // dout_t
    var dq: array<f32, MAX_HEAD>;
    var dt = 0.0;
    for (var d = 0u; d < hs; d++) {
      q[d] = qkv[row * 3u * C + h * hs + d] * scale;
      g[d] = dout[row * C + h * hs + d];
      dq[d] = 0.0;
      dt = fma(g[d], out[row * C + h * hs + d], dt);
    }
    let l = lse[bh * T + min(t, T - 1u)];
    let keys = min(T, t0 + BLOCK);
    for (var k0 = 0u; k0 < keys; k0 += TILE) {
      workgroupBarrier();
      stageKeys(lid.x, b, h, k0);
      workgroupBarrier();
      if (inRange && k0 <= t) {
        let count = min(TILE, t + 1u - k0);
        for (var j = 0u; j < count; j++) {
          var score = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < hs; d++) {
            score = fma(q[d], As[j * hs + d], score);
            dp = fma(g[d], Bs[j * hs + d], dp);
          }
          let ds = exp(score - l) * (dp - dt);
          for (var d = 0u; d < hs; d++) { dq[d] = fma(ds, As[j * hs + d], dq[d]); }
        }
      }
    }
    if (inRange) {
      for (var d = 0u; d < hs; d++) { dqkv[row * 3u * C + h * hs + d] = dq[d] * scale; }
      delta[bh * T + t] = dt;
    }
  }
}

@compute @workgroup_size(64)
fn key(
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  let T = dims.T;
  let C = dims.C;
  let H = dims.H;
  let hs = C / H;
  let scale = inverseSqrt(f32(hs));
  for (var item = wid.x; item < blockCount(); item += groups.x) {
    let block = blockOf(item);
    let b = block.b;
    let h = block.h;
    let bh = block.bh;
    let s0 = block.first;
    let s = s0 + lid.x;
    let inRange = s < T;
    let row = b * T + min(s, T - 1u);
    var k: array<f32, MAX_HEAD>;
    var v: array<f32, MAX_HEAD>;
    var dk: array<f32, MAX_HEAD>;
    var dv: array<f32, MAX_HEAD>;
    for (var d = 0u; d < hs; d++) {
      k[d] = qkv[row * 3u * C + C + h * hs + d] * scale;
      v[d] = qkv[row * 3u * C + 2u * C + h * hs + d];
      dk[d] = 0.0;
      dv[d] = 0.0;
    }
    for (var q0 = s0; q0 < T; q0 += TILE) {
      workgroupBarrier();
      for (var idx = lid.x; idx < TILE * hs; idx += BLOCK) {
        let t = q0 + idx / hs;
        var qv = 0.0;
        var gv = 0.0;
        if (t < T) {
          qv = qkv[(b * T + t) * 3u * C + h * hs + idx % hs];
          gv = dout[(b * T + t) * C + h * hs + idx % hs];
        }
        As[idx] = qv;
        Bs[idx] = gv;
      }
      workgroupBarrier();
      if (inRange) {
        let count = min(TILE, T - q0);
        for (var j = 0u; j < count; j++) {
          let t = q0 + j;
          if (t < s) { continue; }
          var score = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < hs; d++) {
            score = fma(As[j * hs + d], k[d], score);
            dp = fma(Bs[j * hs + d], v[d], dp);
          }
          let p = exp(score - lse[bh * T + t]);
          let ds = p * (dp - delta[bh * T + t]);
          for (var d = 0u; d < hs; d++) {
            dv[d] = fma(p, Bs[j * hs + d], dv[d]);
            dk[d] = fma(ds, As[j * hs + d], dk[d]);
          }
        }
      }
    }
    if (inRange) {
      for (var d = 0u; d < hs; d++) {
        dqkv[row * 3u * C + C + h * hs + d] = dk[d] * scale;
        dqkv[row * 3u * C + 2u * C + h * hs + d] = dv[d];
      }
    }
  }
}
