// bias_backward: dbias[j] = Σ_i dout[i,j] over rows i < M, for each column j < N; written at an
// element offset into the gradient buffer. One thread per column walks the rows (M is a batch:
// hundreds), summing in a fixed order so the result is deterministic.
// Workgroup 64, dispatch ceil(N/64). CPU reference: biasBackward.

struct Dims { M: u32, N: u32, offsetBias: u32, pad: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= dims.N) { return; }
  var sum = 0.0;
  for (var i = 0u; i < dims.M; i++) { sum += dout[i * dims.N + j]; }
  dbias[dims.offsetBias + j] = sum;
}
