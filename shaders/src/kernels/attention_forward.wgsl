// attention_forward: causal multi-head self-attention, fused (FlashAttention's forward): no T×T
// score matrix is ever stored. attention.wgsl is prepended (qkv's layout, blocks, staging).
// out is [B·T, C]; lse[(b·H + h)·T + t] is the row's log-sum-exp of scores, all the backward
// needs to rebuild the probabilities.
// A workgroup takes a block of 64 queries of one (b, h), one thread per query. It walks the keys
// the block can see in tiles of TILE keys, staged in workgroup memory and shared by the 64
// queries; each thread keeps its running max m, its running sum l and its output row o in
// registers, rescaling them as the max grows (the online softmax). Heads up to 128 wide
// (MAX_HEAD, checked by checkModelSpec). CPU reference: attentionForward.

@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;

@compute @workgroup_size(64)
fn main(
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
    let t0 = block.first;
    let t = t0 + lid.x;
    let inRange = t < T;
    var q: array<f32, MAX_HEAD>;
    var o: array<f32, MAX_HEAD>;
    let qAt = (b * T + min(t, T - 1u)) * 3u * C + h * hs;
    for (var d = 0u; d < hs; d++) {
      q[d] = qkv[qAt + d] * scale;
      o[d] = 0.0;
    }
    var m = -3.0e38; // finite: exp(m − m') stays 0, never NaN
    var l = 0.0;
    let keys = min(T, t0 + BLOCK);
    for (var k0 = 0u; k0 < keys; k0 += TILE) {
      workgroupBarrier();
      stageKeys(lid.x, b, h, k0);
      workgroupBarrier();
      if (inRange && k0 <= t) {
        let count = min(TILE, t + 1u - k0);
        for (var j = 0u; j < count; j++) {
          var score = 0.0;
          for (var d = 0u; d < hs; d++) { score = fma(q[d], As[j * hs + d], score); }
          let mNew = max(m, score);
          let correction = exp(m - mNew);
          let p = exp(score - mNew);
          l = l * correction + p;
          for (var d = 0u; d < hs; d++) { o[d] = fma(p, Bs[j * hs + d], o[d] * correction); }
          m = mNew;
        }
      }
    }
    if (inRange) {
      let outAt = (b * T + t) * C + h * hs;
      for (var d = 0u; d < hs; d++) { out[outAt + d] = o[d] / l; }
      lse[block.bh * T + t] = m + log(l);
    }
  }
}
