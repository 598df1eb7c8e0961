// WebRTC for headless workers: simple-peer over @roamhq/wrtc (libwebrtc for Node, whose binary
// installs from the npm registry as a platform package), behind the runtime-agnostic peer
// network of @pangea/shared/client.
import wrtc from "@roamhq/wrtc";
import { type PeerNetwork, WebRtcPeers } from "@pangea/shared/client";
import SimplePeer from "simple-peer";

export function nodePeers(sendSignal: (to: string, payload: Uint8Array) => void): PeerNetwork {
  return new WebRtcPeers(
    ({ initiator, iceServers }) =>
      new SimplePeer({
        initiator,
        wrtc,
        trickle: true,
        config: {
          iceServers: iceServers.map((s) => ({
            urls: s.url,
            ...(s.username ? { username: s.username } : {}),
            ...(s.credential ? { credential: s.credential } : {}),
          })),
        },
      }),
    sendSignal,
  );
}
