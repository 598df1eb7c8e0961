// Hostile frames made from valid ones, for the decoder's fuzz test and the black-box fuzz of a
// running coordinator: random bytes, bit flips, truncations and extensions, hostile segment
// tables, pointer soups and lists that claim more than the frame holds. Seeded by `rand`.

/** Frame generators by name, each drawing from `corpus` (valid encoded frames) and `rand`. */
export function frameMutations(
  rand: () => number,
  corpus: readonly Uint8Array[],
): Record<string, () => Uint8Array> {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = () => corpus[int(corpus.length)]!;
  const randomBytes = (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = int(256);
    return out;
  };
  /** Rewrites the table to one segment holding the rest, so the frame gets past the table. */
  const withHeader = (body: Uint8Array) => {
    const words = Math.floor(body.byteLength / 8);
    const out = new Uint8Array(8 + words * 8);
    out.set(body.subarray(0, words * 8), 8);
    new DataView(out.buffer).setUint32(4, words, true);
    return out;
  };
  const randomPointer = () => {
    const lo = ((int(64) - 32) << 2) | int(4); // a small signed offset and any pointer kind
    const hi = rand() < 0.5 ? int(2 ** 32) : int(16) | (int(16) << 16) | (int(8) << 32);
    return [lo >>> 0, hi >>> 0] as const;
  };

  return {
    random: () => (rand() < 0.5 ? randomBytes(int(600)) : withHeader(randomBytes(8 + int(600)))),
    bitFlipped: () => {
      const f = pick().slice();
      for (let i = 1 + int(8); i > 0; i--) f[int(f.length)]! ^= 1 << int(8);
      return f;
    },
    truncated: () => {
      const f = pick();
      const cut = f.subarray(0, int(f.length));
      return rand() < 0.5 ? cut.slice() : withHeader(cut.subarray(8));
    },
    extended: () => {
      const f = pick();
      const out = new Uint8Array(f.length + 1 + int(200));
      out.set(f);
      out.set(randomBytes(out.length - f.length), f.length);
      return rand() < 0.5 ? out : withHeader(out.subarray(8));
    },
    hostileSegmentTable: () => {
      const counts = [0x7fffffff, 0xffffffff, 511, 512, 1000, 1 + int(600), int(4)];
      const count = counts[int(counts.length)]!;
      const f = new Uint8Array(rand() < 0.3 ? 16 : 8 * (2 + int(300)));
      const dv = new DataView(f.buffer);
      dv.setUint32(0, count, true);
      for (let i = 4; i + 4 <= f.length; i += 4) {
        dv.setUint32(i, rand() < 0.5 ? int(8) : int(2 ** 32), true);
      }
      return f;
    },
    pointerSoup: () => {
      // Deep chains and webs of pointers: every word of a frame a random pointer.
      const words = 2 + int(200);
      const f = new Uint8Array(8 + words * 8);
      const dv = new DataView(f.buffer);
      dv.setUint32(4, words, true);
      for (let w = 0; w < words; w++) {
        const [lo, hi] = rand() < 0.2 ? [0, 0] : randomPointer();
        dv.setUint32(8 + w * 8, lo, true);
        dv.setUint32(12 + w * 8, hi, true);
      }
      // A chain: each struct's only pointer points at the next word (nesting as deep as the frame).
      if (rand() < 0.3) {
        for (let w = 0; w < words; w++) {
          dv.setUint32(8 + w * 8, 0, true);
          dv.setUint32(12 + w * 8, 1 << 16, true);
        }
      }
      return f;
    },
    longLists: () => {
      // A valid frame whose list pointers claim far more elements than the frame holds.
      const f = pick().slice();
      const dv = new DataView(f.buffer);
      for (let w = 1; w * 8 + 8 <= f.length; w++) {
        const lo = dv.getUint32(w * 8, true);
        if ((lo & 3) === 1 && rand() < 0.5) {
          const hi = dv.getUint32(w * 8 + 4, true);
          dv.setUint32(w * 8 + 4, (hi & 7) | ((2 ** 29 - 1 - int(1000)) << 3), true);
        }
      }
      return f;
    },
  };
}
