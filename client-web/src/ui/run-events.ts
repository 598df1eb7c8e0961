// The run's live status, pushed by the coordinator as server-sent events (GET
// /api/runs/:id/events): one event at once, then one per change. No polling.
import { useEffect, useState } from "react";

export interface MetricPoint {
  version: number;
  epoch: number;
  at: number;
  trainLoss: number;
  testLoss?: number;
  testAccuracy?: number;
  samplesPerSecond: number;
  workers: number;
}

export interface WorkerRow {
  id: string;
  client: { kind: string; adapter: string; softwareFallback: boolean; userAgent: string };
  connected: boolean;
  quarantined: boolean;
  samplesPerSecond: number;
  updatesAccepted: number;
  updatesRefused: number;
  lastSeenMsAgo: number;
  name?: string;
  credit?: number;
  verifiedCredit?: number;
  /** WebSocket bytes through the coordinator, and parameter bytes between peers (this process's). */
  bytesIn?: number;
  bytesOut?: number;
  peerBytesIn?: number;
  peerBytesOut?: number;
}

/** One page of the admin's workers table (`GET /api/runs/:id/workers`), the crowd summarized. */
export interface WorkersPage {
  summary: { total: number; connected: number; quarantined: number; samplesPerSecond: number };
  show: WorkersShow;
  matching: number;
  offset: number;
  limit: number;
  workers: WorkerRow[];
}

export type WorkersShow = "all" | "connected" | "quarantined";

/** A contributor as the public sees it: the name its visitor chose and its credit. */
export interface LeaderboardRow {
  id: string;
  name: string;
  samples: number;
  verified: number;
}

export interface RunStatus {
  id: string;
  name: string;
  state: string;
  version: number;
  epoch: number;
  batchesDone: number;
  batchesPerEpoch: number;
  liveLeases: number;
  evaluation: {
    version: number;
    /** Held-out loss in nats (per character, for text). */
    loss: number;
    accuracy: number;
    measured?: string;
    where?: string;
    /** Text generated from that version (language models). */
    sample?: string;
  } | null;
  counters: {
    updatesAccepted: number;
    updatesRefused: Record<string, number>;
    leaseReissues: number;
    samples: number;
    /** Groups of updates reduced among peers and taken, and groups that fell back. */
    groupsReduced?: number;
    groupFallbacks?: number;
  };
  config: Record<string, unknown> & {
    model: { name: string; transformer?: unknown };
    dataset: string;
    /** Sessions fetch parameter frames from each other over WebRTC. */
    peers?: boolean;
    /** ≥ 2: sessions reduce their updates among peers in groups of this many. */
    reduceGroup?: number;
  };
  /** Bytes through the coordinator's WebSockets and between peers, since it started. */
  traffic?: { bytesIn: number; bytesOut: number; peerBytes: number; samples: number };
  contributors: { connected: number; total: number };
  leaderboard: LeaderboardRow[];
  /** Only in the admin view (GET /api/runs/:id with the token; see useAdminWorkers). */
  workers?: WorkerRow[];
}

export function useRunEvents(runId: string | undefined) {
  const [status, setStatus] = useState<RunStatus | null>(null);
  const [points, setPoints] = useState<MetricPoint[]>([]);
  const [live, setLive] = useState(false);
  useEffect(() => {
    if (!runId) return;
    setPoints([]);
    const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
    source.addEventListener("status", (e) => {
      const data = JSON.parse((e as MessageEvent<string>).data) as {
        status: RunStatus;
        points: MetricPoint[];
      };
      setStatus(data.status);
      if (data.points.length > 0) setPoints((old) => mergePoints(old, data.points));
    });
    source.onopen = () => setLive(true);
    source.onerror = () => setLive(false);
    return () => source.close();
  }, [runId]);
  return { status, points, live };
}

/**
 * One point per version, in version order: a version's evaluation (which lands after later
 * commits) is folded into its commit point, or stands alone where there is none (version 0).
 */
export function mergePoints(old: readonly MetricPoint[], incoming: readonly MetricPoint[]) {
  const out = [...old];
  for (const p of incoming) {
    let i = out.length;
    while (i > 0 && out[i - 1]!.version > p.version) i--;
    const same = out[i - 1];
    if (same?.version !== p.version) out.splice(i, 0, p);
    else if (p.testLoss !== undefined)
      out[i - 1] = { ...same, testLoss: p.testLoss, testAccuracy: p.testAccuracy };
  }
  return out;
}
