// matmul: C = op(A) · op(B), with C [M,N], op(A) [M,K], op(B) [K,N], all row-major f32, read and
// written at element offsets into larger buffers (a model's parameters live in one buffer).
//   forward           C = X · W            (TRANSPOSE_A = false, TRANSPOSE_B = false)
//   backward, input   dX = dY · Wᵀ         (TRANSPOSE_B = true: B is W stored [N,K])
//   backward, weight  dW = Xᵀ · dY         (TRANSPOSE_A = true: A is X stored [K,M])
// A workgroup computes 64×64 blocks of C. Two variants:
//   main       for software adapters: 8×8 threads, an 8×8 register block each (in named vec4
//              registers, not an array indexed in a loop, which compilers may leave in memory),
//              reading op(A) and op(B) straight from the storage buffers: no workgroup memory and
//              no barrier. A CPU's caches stage the tiles a GPU kernel copies by hand, and
//              SwiftShader pays for each barrier with a coroutine switch per group of lanes. On
//              SwiftShader (2 cores) this reads 1.2-2.3x the GFLOPS of the same blocks staged
//              through workgroup memory, which it replaced (`pnpm bench:kernels`).
//   main_wide  for GPUs: 16×16 threads, a 4×4 block each, walking K in steps of 32: each step
//              stages a 64×32 slice of op(A) and a 32×64 slice of op(B) in workgroup memory as
//              vec4s (4 consecutive rows of op(A), 4 consecutive columns of op(B)).
// Out-of-range elements are not written, so any M, N, K works.
// Dispatch: (G, 1, 1) with G ≤ the number of 64×64 tiles; each workgroup loops over tiles
// G apart (matmulGroups in runtime/pipelines.ts). CPU reference: matmulForward,
// matmulBackwardInput, matmulBackwardWeight in src/reference/ops.ts.

struct Dims {
  M: u32, N: u32, K: u32,
  offsetA: u32, offsetB: u32, offsetC: u32,
  // With hasBias = 1, C = op(A)·op(B) + bias, the bias read from B's buffer at offsetBias (a
  // layer's weight and bias both live in the parameters): one dispatch fewer per layer.
  hasBias: u32, offsetBias: u32,
}

override TRANSPOSE_A: bool = false;
override TRANSPOSE_B: bool = false;

const BM = 64u;
const BN = 64u;
const BK = 32u;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

var<workgroup> As: array<vec4<f32>, 512>; // As[slot16(k, m / 4)] = op(A)[m..m+3, k]
var<workgroup> Bs: array<vec4<f32>, 512>; // Bs[slot16(k, n / 4)] = op(B)[k, n..n+3]

// Where the vec4 for row k, quad q of a staged slice lives. The quad index is XOR-swizzled with k
// so that threads staging consecutive k of one quad (as they do for an operand stored with k
// contiguous) hit different banks of workgroup memory instead of all hitting one.
fn slot16(k: u32, q: u32) -> u32 {
  return k * 16u + (q ^ (k & 15u));
}

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

fn biasAt(c: u32) -> f32 {
  if (dims.hasBias == 0u || c >= dims.N) { return 0.0; }
  return B[dims.offsetBias + c];
}

fn store(r: u32, c: u32, v: vec4<f32>) {
  if (r >= dims.M) { return; }
  let base = dims.offsetC + r * dims.N;
  if (c < dims.N) { C[base + c] = v.x + biasAt(c); }
  if (c + 1u < dims.N) { C[base + c + 1u] = v.y + biasAt(c + 1u); }
  if (c + 2u < dims.N) { C[base + c + 2u] = v.z + biasAt(c + 2u); }
  if (c + 3u < dims.N) { C[base + c + 3u] = v.w + biasAt(c + 3u); }
}

// Stages the k0.. slices of op(A) and op(B) for the block at (row0, col0): 512 vec4 slots of
// each, split among `threads` threads, ordered so that neighbouring threads read neighbouring
// addresses of each operand as it is stored.
fn stage(tid: u32, threads: u32, row0: u32, col0: u32, k0: u32) {
  for (var slot = tid; slot < 512u; slot += threads) {
    var q: u32; var k: u32;
    if (TRANSPOSE_A) { q = slot % 16u; k = slot / 16u; } else { k = slot % BK; q = slot / BK; }
    let m = row0 + 4u * q;
    As[slot16(k, q)] = vec4<f32>(loadA(m, k0 + k), loadA(m + 1u, k0 + k), loadA(m + 2u, k0 + k), loadA(m + 3u, k0 + k));
    var p: u32; var kb: u32;
    if (TRANSPOSE_B) { kb = slot % BK; p = slot / BK; } else { p = slot % 16u; kb = slot / 16u; }
    let n = col0 + 4u * p;
    Bs[slot16(kb, p)] = vec4<f32>(loadB(k0 + kb, n), loadB(k0 + kb, n + 1u), loadB(k0 + kb, n + 2u), loadB(k0 + kb, n + 3u));
  }
}

// The wide variant: 16×16 threads on the same 64×64 block, a 4×4 register block each. Four
// times the threads per workgroup keeps a GPU's cores busy; a CPU pays for them in barriers.
@compute @workgroup_size(16, 16)
fn main_wide(
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  let tilesX = (dims.N + BN - 1u) / BN;
  let tiles = tilesX * ((dims.M + BM - 1u) / BM);
  for (var tile = wid.x; tile < tiles; tile += groups.x) {
    wideTile(lid, (tile / tilesX) * BM, (tile % tilesX) * BN);
  }
}

fn wideTile(lid: vec3<u32>, row0: u32, col0: u32) {
  let tid = lid.y * 16u + lid.x;
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < dims.K; k0 += BK) {
    stage(tid, 256u, row0, col0, k0);
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = As[slot16(k, lid.y)];
      let b = Bs[slot16(k, lid.x)];
      c0 = fma(vec4<f32>(a.x), b, c0);
      c1 = fma(vec4<f32>(a.y), b, c1);
      c2 = fma(vec4<f32>(a.z), b, c2);
      c3 = fma(vec4<f32>(a.w), b, c3);
    }
    workgroupBarrier();
  }
  let r = row0 + 4u * lid.y;
  let c = col0 + 4u * lid.x;
  store(r, c, c0);
  store(r + 1u, c, c1);
  store(r + 2u, c, c2);
  store(r + 3u, c, c3);
}

// The software variant: each thread's 8×8 block read straight from the buffers. Rows and
// columns past the edge read the last row or column (always in bounds) and are not written.
@compute @workgroup_size(8, 8)
fn main(
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  let tilesX = (dims.N + BN - 1u) / BN;
  let tiles = tilesX * ((dims.M + BM - 1u) / BM);
  for (var tile = wid.x; tile < tiles; tile += groups.x) {
    directTile((tile / tilesX) * BM + 8u * lid.y, (tile % tilesX) * BN + 8u * lid.x);
  }
}

// Where op(A)[m, 0] lives, and the step from k to k + 1.
fn rowA(m: u32) -> u32 {
  let mm = min(m, dims.M - 1u);
  if (TRANSPOSE_A) { return dims.offsetA + mm; }
  return dims.offsetA + mm * dims.K;
}
fn strideA() -> u32 { if (TRANSPOSE_A) { return dims.M; } return 1u; }
// Where op(B)[0, n] lives, and the step from k to k + 1.
fn colB(n: u32) -> u32 {
  let nn = min(n, dims.N - 1u);
  if (TRANSPOSE_B) { return dims.offsetB + nn * dims.K; }
  return dims.offsetB + nn;
}
fn strideB() -> u32 { if (TRANSPOSE_B) { return 1u; } return dims.N; }

// The 8×8 block of C whose first element is (r, c).
fn directTile(r: u32, c: u32) {
  if (r >= dims.M || c >= dims.N) { return; }
  var c0a = vec4<f32>(0.0); var c0b = vec4<f32>(0.0);
  var c1a = vec4<f32>(0.0); var c1b = vec4<f32>(0.0);
  var c2a = vec4<f32>(0.0); var c2b = vec4<f32>(0.0);
  var c3a = vec4<f32>(0.0); var c3b = vec4<f32>(0.0);
  var c4a = vec4<f32>(0.0); var c4b = vec4<f32>(0.0);
  var c5a = vec4<f32>(0.0); var c5b = vec4<f32>(0.0);
  var c6a = vec4<f32>(0.0); var c6b = vec4<f32>(0.0);
  var c7a = vec4<f32>(0.0); var c7b = vec4<f32>(0.0);
  let sa = strideA();
  let sb = strideB();
  let a0 = rowA(r); let a1 = rowA(r + 1u); let a2 = rowA(r + 2u); let a3 = rowA(r + 3u);
  let a4 = rowA(r + 4u); let a5 = rowA(r + 5u); let a6 = rowA(r + 6u); let a7 = rowA(r + 7u);
  let b0 = colB(c); let b1 = colB(c + 1u); let b2 = colB(c + 2u); let b3 = colB(c + 3u);
  let b4 = colB(c + 4u); let b5 = colB(c + 5u); let b6 = colB(c + 6u); let b7 = colB(c + 7u);
  for (var k = 0u; k < dims.K; k++) {
    let ka = k * sa;
    let kb = k * sb;
    let x0 = vec4<f32>(A[a0 + ka], A[a1 + ka], A[a2 + ka], A[a3 + ka]);
    let x1 = vec4<f32>(A[a4 + ka], A[a5 + ka], A[a6 + ka], A[a7 + ka]);
    let y0 = vec4<f32>(B[b0 + kb], B[b1 + kb], B[b2 + kb], B[b3 + kb]);
    let y1 = vec4<f32>(B[b4 + kb], B[b5 + kb], B[b6 + kb], B[b7 + kb]);
    c0a = fma(vec4<f32>(x0.x), y0, c0a); c0b = fma(vec4<f32>(x0.x), y1, c0b);
    c1a = fma(vec4<f32>(x0.y), y0, c1a); c1b = fma(vec4<f32>(x0.y), y1, c1b);
    c2a = fma(vec4<f32>(x0.z), y0, c2a); c2b = fma(vec4<f32>(x0.z), y1, c2b);
    c3a = fma(vec4<f32>(x0.w), y0, c3a); c3b = fma(vec4<f32>(x0.w), y1, c3b);
    c4a = fma(vec4<f32>(x1.x), y0, c4a); c4b = fma(vec4<f32>(x1.x), y1, c4b);
    c5a = fma(vec4<f32>(x1.y), y0, c5a); c5b = fma(vec4<f32>(x1.y), y1, c5b);
    c6a = fma(vec4<f32>(x1.z), y0, c6a); c6b = fma(vec4<f32>(x1.z), y1, c6b);
    c7a = fma(vec4<f32>(x1.w), y0, c7a); c7b = fma(vec4<f32>(x1.w), y1, c7b);
  }
  store(r + 0u, c, c0a); store(r + 0u, c + 4u, c0b);
  store(r + 1u, c, c1a); store(r + 1u, c + 4u, c1b);
  store(r + 2u, c, c2a); store(r + 2u, c + 4u, c2b);
  store(r + 3u, c, c3a); store(r + 3u, c + 4u, c3b);
  store(r + 4u, c, c4a); store(r + 4u, c + 4u, c4b);
  store(r + 5u, c, c5a); store(r + 5u, c + 4u, c5b);
  store(r + 6u, c, c6a); store(r + 6u, c + 4u, c6b);
  store(r + 7u, c, c7a); store(r + 7u, c + 4u, c7b);
}
