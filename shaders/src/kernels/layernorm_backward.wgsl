// layernorm_backward: with n = (x − mean)·rstd (mean and rstd from the forward's stats) and
// dn = dout·weight:
//   input   dinp[i, ·] += rstd·(dn − mean(dn) − n·mean(dn·n)), one thread per row. It adds: dinp
//           is the residual stream's gradient, which the block's output gradient already holds.
//   params_grad  grads[weight + c] = Σ_i dout[i, c]·n[i, c], grads[bias + c] = Σ_i dout[i, c], one
//           thread per column, rows in order (deterministic, no atomics).
// Grid-stride. CPU reference: layernormBackward.

struct Dims { N: u32, C: u32, offsetWeight: u32, offsetBias: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let C = dims.C;
  for (var i = gid.x; i < dims.N; i += groups.x * 64u) {
    let row = i * C;
    let mean = stats[i];
    let rstd = stats[dims.N + i];
    var dnMean = 0.0;
    var dnNMean = 0.0;
    for (var c = 0u; c < C; c++) {
      let n = (inp[row + c] - mean) * rstd;
      let dn = dout[row + c] * params[dims.offsetWeight + c];
      dnMean += dn;
      dnNMean = fma(dn, n, dnNMean);
    }
    dnMean /= f32(C);
    dnNMean /= f32(C);
    for (var c = 0u; c < C; c++) {
      let n = (inp[row + c] - mean) * rstd;
      let dn = dout[row + c] * params[dims.offsetWeight + c];
      dinp[row + c] += rstd * (dn - dnMean - n * dnNMean);
    }
  }
}

@compute @workgroup_size(64)
fn params_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let C = dims.C;
  for (var c = gid.x; c < C; c += groups.x * 64u) {
    var dw = 0.0;
    var db = 0.0;
    for (var i = 0u; i < dims.N; i++) {
      let d = dout[i * C + c];
      dw = fma(d, (inp[i * C + c] - stats[i]) * stats[dims.N + i], dw);
      db += d;
    }
    grads[dims.offsetWeight + c] = dw;
    grads[dims.offsetBias + c] = db;
  }
}
