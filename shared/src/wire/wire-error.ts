/** Why a frame was refused. Every refusal of the codec is one of these, never a library's throw. */
export type WireErrorCode =
  | "frame-too-short" // fewer than the 8 bytes of the smallest possible frame
  | "frame-too-large" // over DecodeLimits.maxFrameBytes
  | "segment-table" // an impossible segment count or sizes that do not fit the frame
  | "pointer" // a pointer out of its segment, of the wrong kind, or a capability
  | "traversal-limit" // the frame points at more words than it holds (amplification)
  | "depth-limit" // nesting deeper than DecodeLimits.maxDepth
  | "list-too-long" // a list over its limit
  | "text" // a Text without its NUL terminator, or not UTF-8
  | "tensor" // data bytes that do not match shape and dtype, or a non-finite scale
  | "enum" // an enumerant this build does not know
  | "integer" // a UInt64 at or above 2^53 (JavaScript would read it inexactly)
  | "message" // the payload's variant disagrees with messageType, or is unknown
  | "encode" // a message that cannot be encoded (ours to fix, not the peer's)
  | "unchecked"; // a fault no explicit check caught: a bug in the codec (the fuzz test hunts these)

/** A refused frame: `code` for programs, `message` for people. */
export class WireError extends Error {
  override readonly name = "WireError";
  constructor(
    readonly code: WireErrorCode,
    message: string,
  ) {
    super(message);
  }
}
