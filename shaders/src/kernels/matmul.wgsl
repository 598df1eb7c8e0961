// matmul: C = op(A) · op(B), with C [M,N], op(A) [M,K], op(B) [K,N], all row-major f32, read and
// written at element offsets into larger buffers (a model's parameters live in one buffer).
//   forward           C = X · W            (TRANSPOSE_A = false, TRANSPOSE_B = false)
//   backward, input   dX = dY · Wᵀ         (TRANSPOSE_B = true: B is W stored [N,K])
//   backward, weight  dW = Xᵀ · dY         (TRANSPOSE_A = true: A is X stored [K,M])
// Tiling: a workgroup of 16×16 threads computes a 64×64 block of C, walking K in steps of 16;
// each step stages a 64×16 slice of op(A) and a 16×64 slice of op(B) in workgroup memory, and
// each thread accumulates a 4×4 register block at rows ty+16i, columns tx+16j (strided, so
// shared-memory reads broadcast and global writes coalesce). Out-of-range elements load as 0
// and are not written, so any M, N, K works.
// Dispatch: (ceil(N/64), ceil(M/64), 1). CPU reference: matmulForward, matmulBackwardInput,
// matmulBackwardWeight in src/reference/ops.ts.

struct Dims {
  M: u32, N: u32, K: u32,
  offsetA: u32, offsetB: u32, offsetC: u32,
  pad0: u32, pad1: u32,
}

override TRANSPOSE_A: bool = false;
override TRANSPOSE_B: bool = false;

const BM = 64u;
const BN = 64u;
const BK = 16u;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

var<workgroup> As: array<f32, 1024>; // As[k * BM + m]
var<workgroup> Bs: array<f32, 1024>; // Bs[k * BN + n]

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= dims.M || k >= dims.K) { return 0.0; }
  if (TRANSPOSE_A) { return A[dims.offsetA + k * dims.M + m]; }
  return A[dims.offsetA + m * dims.K + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  if (k >= dims.K || n >= dims.N) { return 0.0; }
  if (TRANSPOSE_B) { return B[dims.offsetB + n * dims.K + k]; }
  return B[dims.offsetB + k * dims.N + n];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let tid = lid.y * 16u + lid.x;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < dims.K; k0 += BK) {
    // 1,024 elements of each slice, 4 per thread, in the order that reads global memory
    // contiguously for the operand's storage layout.
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * 256u;
      var m: u32; var k: u32;
      if (TRANSPOSE_A) { m = idx % BM; k = idx / BM; } else { k = idx % BK; m = idx / BK; }
      As[k * BM + m] = loadA(row0 + m, k0 + k);
      var n: u32; var kb: u32;
      if (TRANSPOSE_B) { kb = idx % BK; n = idx / BK; } else { n = idx % BN; kb = idx / BN; }
      Bs[kb * BN + n] = loadB(k0 + kb, col0 + n);
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = As[k * BM + lid.y + 16u * i]; }
      for (var j = 0u; j < 4u; j++) { b[j] = Bs[k * BN + lid.x + 16u * j]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y + 16u * i;
    if (r >= dims.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x + 16u * j;
      if (c < dims.N) { C[dims.offsetC + r * dims.N + c] = acc[i * 4u + j]; }
    }
  }
}
