// layernorm_forward: per row of inp [N, C], out = (x − mean)·rstd·weight + bias with
// rstd = 1/√(var + 1e-5); keeps mean in stats[i] and rstd in stats[N + i] for the backward.
// weight and bias are read from the parameter buffer at their offsets. One thread per row
// (grid-stride): a GPT's rows are short (C ≤ a few thousand), and a row's three passes stay in
// one thread's cache. CPU reference: layernormForward.

struct Dims { N: u32, C: u32, offsetWeight: u32, offsetBias: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let C = dims.C;
  for (var i = gid.x; i < dims.N; i += groups.x * 64u) {
    let row = i * C;
    var sum = 0.0;
    for (var c = 0u; c < C; c++) { sum += inp[row + c]; }
    let mean = sum / f32(C);
    var sq = 0.0;
    for (var c = 0u; c < C; c++) {
      let d = inp[row + c] - mean;
      sq = fma(d, d, sq);
    }
    let rstd = inverseSqrt(sq / f32(C) + 1e-5);
    for (var c = 0u; c < C; c++) {
      out[row + c] = (inp[row + c] - mean) * rstd * params[dims.offsetWeight + c] + params[dims.offsetBias + c];
    }
    stats[i] = mean;
    stats[dims.N + i] = rstd;
  }
}
