// Parameter frames between headless workers over real WebRTC (simple-peer on @roamhq/wrtc),
// against `pangea serve`: leases name peers that hold the version, the coordinator sends each
// version's frame to a few sessions instead of all of them, and a peer that serves bytes which
// do not hash to the frame is caught by its receivers, who fall back to the coordinator.
import { mlpSpec } from "@pangea/shared";
import { type PeerNetwork, WebRtcPeers } from "@pangea/shared/client";
import wrtc from "@roamhq/wrtc";
import SimplePeer from "simple-peer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, serverProcess } from "../testing/server-process.ts";
import { nodePeers } from "./webrtc-peers.ts";
import { type ConnectedWorker, connectWorker } from "./ws-worker.ts";

const VERSIONS = 24;

/** Serves every frame with one byte flipped: what a receiver must refuse. */
class LyingPeers extends WebRtcPeers {
  override offer(version: number, frame: Uint8Array): void {
    const bad = frame.slice();
    bad[bad.length - 9]! ^= 0x40;
    super.offer(version, bad);
  }
}

const lyingPeers = (send: (to: string, payload: Uint8Array) => void): PeerNetwork =>
  new LyingPeers(({ initiator }) => new SimplePeer({ initiator, wrtc }), send);

interface Status {
  state: string;
  version: number;
  traffic: { bytesIn: number; bytesOut: number; peerBytes: number; samples: number };
  workers: Array<{ id: string; strikes: number; peerBytesOut?: number; peerBytesIn?: number }>;
}

describe("parameter frames between peers over WebRTC", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await serverProcess({ demo: false });
  }, 120_000);
  afterAll(async () => {
    await server?.dispose();
  });

  async function train(peers: Array<"honest" | "liar">, name: string) {
    const created = await server.api("/api/runs", {
      method: "POST",
      body: JSON.stringify({
        name,
        model: mlpSpec([16, 64, 4], { seed: 5 }),
        dataset: "blobs",
        batchSize: 16,
        strategy: { kind: "synchronous", targetUpdates: peers.length, stragglerMs: 5_000 },
        optimizer: { learningRate: 3e-3 },
        stop: { versions: VERSIONS },
        peers: true,
      }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const workers: ConnectedWorker[] = peers.map((kind) =>
      connectWorker(server.url, { runId: id, peers: kind === "liar" ? lyingPeers : nodePeers }),
    );
    await Promise.all(workers.map((w) => w.done));
    for (const w of workers) w.worker.peers?.close();
    const status = (await (await server.api(`/api/runs/${id}`)).json()) as Status;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    return { id, workers, status, metrics };
  }

  it("spreads each version from a few sessions to the rest", async () => {
    const { workers, status, metrics } = await train(
      ["honest", "honest", "honest", "honest"],
      "peers",
    );
    console.log(
      metrics
        .split("\n")
        .filter((l) => l.startsWith("pangea_peer"))
        .join("\n"),
    );
    expect(status.state).toBe("finished");
    expect(status.version).toBe(VERSIONS);
    const fetched = workers.reduce((n, w) => n + w.worker.peerFrames.fetched, 0);
    const failed = workers.reduce((n, w) => n + w.worker.peerFrames.failed, 0);
    const served = workers.reduce((n, w) => n + (w.worker.peers?.stats().framesServed ?? 0), 0);
    console.log(
      `peers: ${fetched} frames from peers, ${failed} fell back; ${(status.traffic.peerBytes / 1e6).toFixed(2)} MB between peers, ${(status.traffic.bytesOut / 1e6).toFixed(2)} MB out of the coordinator`,
    );
    // Every version after the first goes out once or twice from the coordinator, not 4 times.
    expect(fetched).toBeGreaterThanOrEqual(VERSIONS);
    expect(served).toBeGreaterThanOrEqual(fetched);
    expect(failed).toBeLessThanOrEqual(2);
    expect(status.traffic.peerBytes).toBeGreaterThan(0);
    expect(status.workers.some((w) => (w.peerBytesOut ?? 0) > 0)).toBe(true);
    expect(status.workers.every((w) => w.strikes === 0)).toBe(true);
  }, 300_000);

  it("catches a peer that serves bytes that do not match the frame's hash", async () => {
    const { workers, status, metrics } = await train(
      ["liar", "honest", "honest", "honest"],
      "a liar among peers",
    );
    expect(status.state).toBe("finished");
    expect(status.version).toBe(VERSIONS);
    const liar = workers[0]!.worker;
    const honest = workers.slice(1).map((w) => w.worker);
    // Its receivers saw the bad hash and got the frame from the coordinator instead.
    expect(honest.reduce((n, w) => n + w.peerFrames.failed, 0)).toBeGreaterThanOrEqual(2);
    expect(metrics).toMatch(
      /pangea_peer_parameter_frames_total\{outcome="fallback",failure="badHash"\} [1-9]/,
    );
    expect(metrics).toMatch(/pangea_peer_strikes_total [1-9]/);
    const liarStats = status.workers.find((w) => w.id === liar.sessionId)!;
    expect(liarStats.strikes).toBeGreaterThanOrEqual(1);
    for (const w of honest)
      expect(status.workers.find((s) => s.id === w.sessionId)!.strikes).toBe(0);
  }, 300_000);
});
