// @pangea/shared: the wire (schema, codec) shared by browser, Node and edge.

export { type Jitter, jitterImages, warpImage } from "./data/augment.ts";
export * from "./data/dataset.ts";
export * from "./data/import.ts";
export {
  decodeImageShard,
  encodeCodedImageShard,
  encodeImageShard,
  type ImageSplit,
} from "./data/image-shard.ts";
export * from "./data/shard.ts";
export { syntheticBlobs } from "./data/synthetic.ts";
export * from "./data/text-shard.ts";
export * from "./model/model-spec.ts";
export * from "./model/safetensors.ts";
export { seededRandom } from "./random.ts";
export { installSha256, sha256, sha256Hex } from "./sha256.ts";
export * from "./wire/codec.ts";
export type { DecodeLimits } from "./wire/frame-reader.ts";
export { defaultDecodeLimits } from "./wire/frame-reader.ts";
export * from "./wire/messages.ts";
export { fp16ToFp32, fp32ToFp16, fp32ToInt8, int8ToFp32 } from "./wire/quantize.ts";
export { WireError, type WireErrorCode } from "./wire/wire-error.ts";
export * from "./reduce/aggregate.ts";
export * from "./reduce/pieces.ts";
