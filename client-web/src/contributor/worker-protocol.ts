// The messages between the contributor page and its training Web Worker (types only).
import type { IceServer, PeerFailure } from "@pangea/shared";
import type { ConnectionState } from "@pangea/shared/client";

/**
 * WebRTC lives in the page (a Web Worker has no RTCPeerConnection): the worker's Contributor
 * reaches the page's peer network (peers.ts) through the `peer.*` messages (worker-peers.ts).
 */
export type PeerToWorker =
  /** The page's network sends a signaling payload to another session through the coordinator. */
  | { type: "peer.signal"; to: string; payload: Uint8Array }
  /** A fetch ended: the frame, or why not. */
  | {
      type: "peer.fetched";
      id: number;
      frame?: Uint8Array;
      failure?: PeerFailure;
      message?: string;
    };

export type PeerFromWorker =
  | { type: "peer.configure"; iceServers: IceServer[] }
  | { type: "peer.fetch"; id: number; peer: string; version: number; timeoutMs: number }
  | { type: "peer.offer"; version: number; frame: Uint8Array }
  /** Bytes [start, end) of a peer's declared update (reduction among peers): ends as peer.fetched. */
  | {
      type: "peer.fetchPart";
      id: number;
      peer: string;
      leaseId: number;
      start: number;
      end: number;
      timeoutMs: number;
    }
  | { type: "peer.share"; leaseId: number; update: Uint8Array }
  | { type: "peer.unshare"; leaseId: number }
  /** A signaling payload the coordinator relayed from session `from`. */
  | { type: "peer.signal"; from: string; payload: Uint8Array }
  | { type: "peer.close" };

export type ToWorker =
  /** `peers`: the page can reach other tabs over WebRTC, and will carry the worker's frames. */
  | { type: "start"; url: string; runId: string; displayName: string; peers: boolean }
  | PeerToWorker
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
  | PeerFromWorker
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
