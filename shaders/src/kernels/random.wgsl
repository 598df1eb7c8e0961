// random: the counter-based generator behind dropout, prepended to the kernels that drop
// (dropout.wgsl, residual.wgsl, embedding.wgsl; see index.ts). Element i of a tensor is kept when
// lowbias32(i ^ key) ≥ threshold, with key and threshold from the host (dropoutKey and
// dropThreshold in src/reference/transformer-ops.ts, which computes the same bits): no state, so
// a forward and its backward, or two tabs, draw the same mask from the same key.

fn hash32(x: u32) -> u32 {
  var h = x;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

// The factor element i is multiplied by: 0 when dropped, scale = 1/(1 − p) when kept.
// threshold 0 keeps everything (dropout off).
fn dropoutScale(i: u32, key: u32, threshold: u32, scale: f32) -> f32 {
  return select(0.0, scale, hash32(i ^ key) >= threshold);
}
