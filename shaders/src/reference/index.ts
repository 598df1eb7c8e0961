// The CPU reference: every kernel and the whole model in float64.

export * from "./gpt.ts";
export * from "./held-out.ts";
export * from "./mlp.ts";
export * from "./model.ts";
export * from "./ops.ts";
