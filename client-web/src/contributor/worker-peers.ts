// The worker's side of the peer network: a PeerNetwork whose WebRTC connections live in the page
// (page-peers.ts), reached through postMessage (worker-protocol.ts). Frames travel as copies:
// a version's frame crosses once each way, small beside training on it.
import {
  emptyPeerStats,
  PeerFetchError,
  type PeerNetwork,
  type PeerStats,
} from "@pangea/shared/client";
import type { PeerFromWorker, PeerToWorker } from "./worker-protocol.ts";

export class WorkerPeers implements PeerNetwork {
  private serial = 0;
  private readonly pending = new Map<
    number,
    { resolve: (frame: Uint8Array) => void; reject: (e: unknown) => void; part?: boolean }
  >();
  private counts = emptyPeerStats();

  constructor(
    private readonly post: (m: PeerFromWorker) => void,
    private readonly sendSignal: (to: string, payload: Uint8Array) => void,
  ) {}

  /** A message from the page: a signal to relay, or a fetch's end. */
  fromPage(m: PeerToWorker): void {
    if (m.type === "peer.signal") {
      this.sendSignal(m.to, m.payload);
      return;
    }
    const waiter = this.pending.get(m.id);
    if (!waiter) return;
    this.pending.delete(m.id);
    if (m.frame) {
      if (!waiter.part) this.counts.framesFetched++;
      waiter.resolve(m.frame);
    } else
      waiter.reject(new PeerFetchError(m.failure ?? "unreachable", m.message ?? "no peer frame"));
  }

  configure(iceServers: Parameters<PeerNetwork["configure"]>[0]): void {
    this.post({ type: "peer.configure", iceServers: [...iceServers] });
  }

  fetch(peer: string, version: number, timeoutMs: number): Promise<Uint8Array> {
    const id = ++this.serial;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ type: "peer.fetch", id, peer, version, timeoutMs });
    });
  }

  fetchPart(
    peer: string,
    leaseId: number,
    start: number,
    end: number,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    const id = ++this.serial;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, part: true });
      this.post({ type: "peer.fetchPart", id, peer, leaseId, start, end, timeoutMs });
    });
  }

  share(leaseId: number, update: Uint8Array): void {
    // The contributor keeps its own array: the page gets a copy (once per update).
    this.post({ type: "peer.share", leaseId, update: update.slice() });
  }

  unshare(leaseId: number): void {
    this.post({ type: "peer.unshare", leaseId });
  }

  offer(version: number, frame: Uint8Array): void {
    this.post({ type: "peer.offer", version, frame: frame.slice() });
  }

  signal(from: string, payload: Uint8Array): void {
    this.post({ type: "peer.signal", from, payload });
  }

  stats(): PeerStats {
    return { ...this.counts };
  }

  close(): void {
    this.post({ type: "peer.close" });
    for (const [, w] of this.pending) w.reject(new PeerFetchError("unreachable", "peers closed"));
    this.pending.clear();
  }
}
