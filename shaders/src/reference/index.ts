// The CPU reference: every kernel and the whole model in float64.
export * from "./mlp.ts";
export * from "./ops.ts";
