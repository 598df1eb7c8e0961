// attention: what the fused attention kernels share, prepended to attention_forward.wgsl and
// attention_backward.wgsl (attentionKernels in index.ts): the shapes, the specialization, the
// qkv input, the staged tiles and how the work is split.
//   qkv is [B·T, 3C]: q, k and v side by side, head h in columns h·hs .. (h+1)·hs of each third
//   (hs = C/H). Work comes in blocks of 64 rows (queries, or keys for the backward's key pass) of
//   one (b, h), one thread per row; dispatch (G, 1, 1), workgroup w taking blocks w, w + G, …

struct Dims { B: u32, T: u32, C: u32, H: u32 }

// MAX_HEAD and TILE are specialized per head size (attentionKernels rewrites these two lines):
// private rows of MAX_HEAD floats, and tiles that fill 16 KiB of workgroup memory.
const MAX_HEAD = 128u;
const TILE = 16u;
const BLOCK = 64u;
const STAGED = TILE * MAX_HEAD;

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;

var<workgroup> As: array<f32, STAGED>; // TILE rows, hs apart: k rows, or q rows (key pass)
var<workgroup> Bs: array<f32, STAGED>; // v rows, or dout rows (key pass)

// One block of work: sequence b, head h (bh = b·H + h), rows first .. first + 63.
struct Block { b: u32, h: u32, bh: u32, first: u32 }

fn blockCount() -> u32 {
  return (dims.T + BLOCK - 1u) / BLOCK * dims.B * dims.H;
}

fn blockOf(item: u32) -> Block {
  let blocks = (dims.T + BLOCK - 1u) / BLOCK;
  let bh = item / blocks;
  return Block(bh / dims.H, bh % dims.H, bh, (item % blocks) * BLOCK);
}

// Stages the key and value rows k0 .. k0 + TILE of (b, h) into As and Bs (zeros past T). The
// caller puts a barrier before (the last tile is read) and after (this one is written).
fn stageKeys(tid: u32, b: u32, h: u32, k0: u32) {
  let T = dims.T;
  let C = dims.C;
  let hs = C / dims.H;
  for (var idx = tid; idx < TILE * hs; idx += BLOCK) {
    let s = k0 + idx / hs;
    var kv = 0.0;
    var vv = 0.0;
    if (s < T) {
      let at = (b * T + s) * 3u * C + h * hs + idx % hs;
      kv = qkv[at + C];
      vv = qkv[at + 2u * C];
    }
    As[idx] = kv;
    Bs[idx] = vv;
  }
}
