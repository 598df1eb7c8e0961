// The messages between the contributor page and its training Web Worker (types only).
import type { ConnectionState } from "@pangea/shared/client";

export type ToWorker =
  | { type: "start"; url: string; runId: string; displayName: string }
  | { type: "pause" }
  | { type: "resume" }
  /** The fraction of time the GPU may work, 0.1 to 1. */
  | { type: "duty"; value: number }
  | { type: "leave" };

export interface AdapterInfo {
  description: string;
  softwareFallback: boolean;
}

export type FromWorker =
  | { type: "adapter"; adapter: AdapterInfo }
  | { type: "unsupported"; message: string }
  | { type: "connection"; state: ConnectionState; reconnects: number }
  | { type: "joined"; runId: string; runName: string; sessionId: string; version: number }
  | {
      type: "work";
      loss: number;
      samples: number;
      ms: number;
      batchesDone: number;
      samplesDone: number;
      samplesPerSecond: number;
      acks: number;
      refusals: number;
    }
  | { type: "paused"; paused: boolean }
  | { type: "notice"; message: string }
  | { type: "ended"; message: string }
  | { type: "error"; message: string };
