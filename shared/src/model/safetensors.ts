// Checkpoints in the safetensors format (Hugging Face's: what PyTorch, JAX, candle and
// Transformers.js read): an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the tensors' bytes. Pangea writes float32 tensors
// under their layout names, with the model spec and the run's state as string metadata.

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** The largest header this reader takes (a model's header is a few kilobytes). */
const MAX_HEADER_BYTES = 16 << 20;

export function encodeSafetensors(
  tensors: readonly NamedTensor[],
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === "__metadata__" || Object.hasOwn(header, t.name))
      throw new Error(`safetensors: the tensor name ${t.name} is taken`);
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1))
      throw new Error(`safetensors: ${t.name} has ${t.data.length} values for shape [${t.shape}]`);
    const bytes = t.data.length * 4;
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Padded with spaces so that the data starts 8-byte aligned (the format's recommendation).
  json += " ".repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, head.length, true);
  view.setUint32(4, 0, true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Reads a safetensors file of float32 tensors, in file order. Throws one error listing every
 * problem found in the header (a truncated file, a dtype other than F32, a range outside the
 * data or overlapping another, a shape that does not match its bytes).
 */
export function decodeSafetensors(bytes: Uint8Array): {
  tensors: NamedTensor[];
  metadata: Record<string, string>;
} {
  const fail = (why: string): never => {
    throw new Error(`not a safetensors file Pangea reads: ${why}`);
  };
  if (bytes.byteLength < 8) fail(`${bytes.byteLength} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (length > MAX_HEADER_BYTES || 8 + length > bytes.byteLength)
    fail(`a ${length}-byte header in a ${bytes.byteLength}-byte file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
        bytes.subarray(8, 8 + length),
      ),
    );
  } catch (e) {
    return fail(`its header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header))
    fail("its header is not an object");
  const dataStart = 8 + length;
  const dataBytes = bytes.byteLength - dataStart;
  const problems: string[] = [];
  const metadata: Record<string, string> = {};
  const entries: { name: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      for (const [k, v] of Object.entries((value as Record<string, unknown>) ?? {}))
        if (typeof v === "string") metadata[k] = v;
        else problems.push(`metadata ${k} is not a string`);
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = v?.shape;
    const offsets = v?.data_offsets;
    if (v?.dtype !== "F32") {
      problems.push(`${name} is ${String(v?.dtype)}, not F32`);
      continue;
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      problems.push(`${name} has no valid shape`);
      continue;
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1] ||
      offsets[1] > dataBytes
    ) {
      problems.push(`${name}'s byte range is outside the file's ${dataBytes} bytes of data`);
      continue;
    }
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (offsets[1] - offsets[0] !== count * 4) {
      problems.push(`${name} has ${offsets[1] - offsets[0]} bytes for shape [${shape}]`);
      continue;
    }
    entries.push({ name, shape: shape as number[], begin: offsets[0], end: offsets[1] });
  }
  entries.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < entries.length; i++)
    if (entries[i]!.begin < entries[i - 1]!.end)
      problems.push(`${entries[i]!.name} overlaps ${entries[i - 1]!.name}`);
  if (problems.length > 0) fail(problems.join("; "));
  const tensors = entries.map((e) => ({
    name: e.name,
    shape: e.shape,
    // A copy: the data may not sit 4-byte aligned in `bytes`.
    data: new Float32Array(bytes.slice(dataStart + e.begin, dataStart + e.end).buffer),
  }));
  return { tensors, metadata };
}
