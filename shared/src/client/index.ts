// @pangea/shared/client: a contributor's side of the protocol and its reconnecting connection,
// shared by the browser tab and the headless worker.
export * from "./connection.ts";
export * from "./contributor.ts";
export * from "./peers.ts";
