// The page's side of the peer network: simple-peer connections to other tabs (RTCPeerConnection
// exists only on the page's thread), driven by the training worker's `peer.*` messages.
import type { IceServer } from "@pangea/shared";
import { PeerFetchError, type PeerStats, WebRtcPeers } from "@pangea/shared/client";
// The prebuilt browser bundle: it carries the Buffer and stream shims simple-peer needs.
import SimplePeer from "simple-peer/simplepeer.min.js";
import type { PeerFromWorker, PeerToWorker } from "./worker-protocol.ts";

export const webRtcAvailable = () => typeof RTCPeerConnection === "function";

export class PagePeers {
  private readonly network: WebRtcPeers;

  constructor(private readonly post: (m: PeerToWorker) => void) {
    this.network = new WebRtcPeers(
      ({ initiator, iceServers }) =>
        new SimplePeer({
          initiator,
          trickle: true,
          config: { iceServers: rtcServers(iceServers) },
        }),
      (to, payload) => this.post({ type: "peer.signal", to, payload }),
    );
  }

  /** Handles a `peer.*` message from the worker; false for any other message. */
  handle(m: { type: string }): boolean {
    const p = m as PeerFromWorker;
    switch (p.type) {
      case "peer.configure":
        this.network.configure(p.iceServers);
        return true;
      case "peer.offer":
        this.network.offer(p.version, p.frame);
        return true;
      case "peer.signal":
        this.network.signal(p.from, p.payload);
        return true;
      case "peer.share":
        this.network.share(p.leaseId, p.update);
        return true;
      case "peer.unshare":
        this.network.unshare(p.leaseId);
        return true;
      case "peer.fetchPart":
        this.answer(p.id, this.network.fetchPart(p.peer, p.leaseId, p.start, p.end, p.timeoutMs));
        return true;
      case "peer.close":
        this.network.close();
        return true;
      case "peer.fetch":
        this.answer(p.id, this.network.fetch(p.peer, p.version, p.timeoutMs));
        return true;
      default:
        return false;
    }
  }

  /** A fetch's end, to the worker: the bytes, or why not. */
  private answer(id: number, fetched: Promise<Uint8Array>): void {
    fetched.then(
      (frame) => this.post({ type: "peer.fetched", id, frame }),
      (e: unknown) =>
        this.post({
          type: "peer.fetched",
          id,
          failure: e instanceof PeerFetchError ? e.failure : "unreachable",
          message: String(e instanceof Error ? e.message : e),
        }),
    );
  }

  stats(): PeerStats {
    return this.network.stats();
  }
}

function rtcServers(servers: readonly IceServer[]): RTCIceServer[] {
  return servers.map((s) => ({
    urls: s.url,
    ...(s.username ? { username: s.username } : {}),
    ...(s.credential ? { credential: s.credential } : {}),
  }));
}
