// @pangea/shared: the wire (schema, codec) shared by browser, Node and edge.
export * from "./wire/codec.ts";
export type { DecodeLimits } from "./wire/frame-reader.ts";
export { defaultDecodeLimits } from "./wire/frame-reader.ts";
export * from "./wire/messages.ts";
export { fp16ToFp32, fp32ToFp16, fp32ToInt8, int8ToFp32 } from "./wire/quantize.ts";
export { WireError, type WireErrorCode } from "./wire/wire-error.ts";
export * from "./model/model-spec.ts";
export * from "./data/dataset.ts";
export { syntheticBlobs } from "./data/synthetic.ts";
export { seededRandom } from "./random.ts";
export { type Jitter, jitterImages, warpImage } from "./data/augment.ts";
export * from "./data/text-shard.ts";
