// Parameter frames between headless workers over real WebRTC (simple-peer on @roamhq/wrtc),
// against `pangea serve`: leases name peers that hold the version, the coordinator sends each
// version's frame to a few sessions instead of all of them, and a peer that serves bytes which
// do not hash to the frame is caught by its receivers, who fall back to the coordinator; and a
// run that reduces its updates among the peers sends the coordinator one update's bytes a group.
import { mlpSpec } from "@pangea/shared";
import { AWAIT_FRAME_MS, type PeerNetwork, WebRtcPeers } from "@pangea/shared/client";
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
  counters: { groupsReduced?: number; groupFallbacks?: number };
  traffic: { bytesIn: number; bytesOut: number; peerBytes: number; samples: number };
  workers: Array<{ id: string; strikes: number; peerBytesOut?: number; peerBytesIn?: number }>;
}

/** The coordinator's bytes in per sample in the first run (every update whole). */
let wholeIn = 0;

describe("a holder asked for a frame before it has it", () => {
  it("answers once the frame arrives (within AWAIT_FRAME_MS), and says missing after that", async () => {
    const nets: WebRtcPeers[] = [];
    const make = (me: string) =>
      new WebRtcPeers(
        ({ initiator }) => new SimplePeer({ initiator, wrtc }),
        (to, payload) => nets[to === "a" ? 0 : 1]!.signal(me, payload),
      );
    nets.push(make("a"), make("b"));
    const [a, b] = nets as [WebRtcPeers, WebRtcPeers];
    try {
      const frame = new Uint8Array(100_000).map((_, i) => i % 251);
      // "a" is asked for version 3 while the coordinator's frame is still on its way to it.
      const fetched = b.fetch("a", 3, 10_000);
      await new Promise((r) => setTimeout(r, 400));
      a.offer(3, frame);
      expect(await fetched).toEqual(frame);
      // A version it is not about to get: after the wait, missing (not a timeout).
      const started = Date.now();
      await expect(b.fetch("a", 4, 10_000)).rejects.toMatchObject({ failure: "missing" });
      expect(Date.now() - started).toBeGreaterThanOrEqual(AWAIT_FRAME_MS - 50);
      // An older version it no longer keeps: missing at once.
      a.offer(4, frame);
      a.offer(5, frame);
      await expect(b.fetch("a", 3, 10_000)).rejects.toMatchObject({ failure: "missing" });
    } finally {
      a.close();
      b.close();
    }
  }, 30_000);

  it("tells a peer at once that a version far ahead is missing, and lets one peer hold only 4 waiting places", async () => {
    const names = ["a", "b", "c"];
    const nets: WebRtcPeers[] = [];
    const make = (me: string) =>
      new WebRtcPeers(
        ({ initiator }) => new SimplePeer({ initiator, wrtc }),
        (to, payload) => nets[names.indexOf(to)]!.signal(me, payload),
      );
    nets.push(...names.map(make));
    const [a, b, c] = nets as [WebRtcPeers, WebRtcPeers, WebRtcPeers];
    try {
      const frame = new Uint8Array(50_000).map((_, i) => i % 239);
      a.offer(5, frame);
      // Connected first (a served frame), so that what follows times only the answers.
      expect(await b.fetch("a", 5, 10_000)).toEqual(frame);
      expect(await c.fetch("a", 5, 10_000)).toEqual(frame);
      // A hostile peer's requests for versions no coordinator has made would each hold a place
      // for AWAIT_FRAME_MS: they are answered at once.
      let started = Date.now();
      for (const version of [8, 1_000, 2 ** 40])
        await expect(b.fetch("a", version, 10_000)).rejects.toMatchObject({ failure: "missing" });
      expect(Date.now() - started).toBeLessThan(AWAIT_FRAME_MS / 2);
      // Five requests from b for the next version: the fifth is refused, and so all of b's are.
      started = Date.now();
      const many = Array.from({ length: 5 }, () => b.fetch("a", 6, 10_000));
      for (const m of many) await expect(m).rejects.toMatchObject({ failure: "missing" });
      expect(Date.now() - started).toBeLessThan(AWAIT_FRAME_MS / 2);
      // c's request for it still waits for the frame and gets it.
      const waiting = c.fetch("a", 6, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      a.offer(6, frame);
      expect(await waiting).toEqual(frame);
    } finally {
      for (const n of nets) n.close();
    }
  }, 30_000);
});

describe("parameter frames between peers over WebRTC", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await serverProcess({ demo: false });
  }, 120_000);
  afterAll(async () => {
    await server?.dispose();
  });

  async function train(peers: Array<"honest" | "liar">, name: string, reduceGroup = 0) {
    const created = await server.api("/api/runs", {
      method: "POST",
      body: JSON.stringify({
        name,
        // Wide enough that the updates, not the messages around them, are most of the bytes.
        model: mlpSpec([16, 256, 4], { seed: 5 }),
        dataset: "blobs",
        batchSize: 16,
        strategy: { kind: "synchronous", targetUpdates: peers.length, stragglerMs: 5_000 },
        optimizer: { learningRate: 3e-3 },
        stop: { versions: VERSIONS },
        peers: true,
        reduceGroup,
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
    wholeIn = status.traffic.bytesIn / status.traffic.samples;
  }, 300_000);

  it("reduces the updates of a version among the peers: one update's bytes reach the coordinator", async () => {
    const { status } = await train(["honest", "honest", "honest", "honest"], "reduce", 4);
    expect(status.state).toBe("finished");
    expect(status.version).toBe(VERSIONS);
    const c = status.counters;
    const reducedIn = status.traffic.bytesIn / status.traffic.samples;
    console.log(
      `reduce: ${c.groupsReduced} groups reduced, ${c.groupFallbacks ?? 0} fell back; coordinator ${reducedIn.toFixed(0)} B in per sample, against ${wholeIn.toFixed(0)} with whole updates`,
    );
    // Every version but perhaps one (a group forming while the peers' connections open) reduced.
    expect(c.groupsReduced).toBeGreaterThanOrEqual(VERSIONS - 2);
    expect(status.workers.every((w) => w.strikes === 0)).toBe(true);
    if (wholeIn > 0) expect(reducedIn).toBeLessThan(wholeIn / 2);
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
