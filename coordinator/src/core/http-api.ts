// The coordinator's HTTP API (JSON), on Hono, which runs the same on Node and on Workers. Reads
// are open; changes and checkpoints need `Authorization: Bearer <admin token>`. Every body is
// validated, and a bad one gets a 400 that lists what is wrong.
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { checkpointParameters, encodeCheckpoint, readCheckpoint } from "./checkpoint.ts";
import type { Coordinator } from "./coordinator.ts";
import { RunConfigError, type RunConfigInput, resolveRunConfig } from "./run-config.ts";
import { isAdmin, StreamLimit, UNAUTHORIZED } from "./surface.ts";

/** The largest run-creation body: a checkpoint of a 30M-parameter model (128 MiB). */
export const DEFAULT_MAX_CHECKPOINT_BYTES = 128 << 20;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface ApiOptions {
  adminToken: string;
  startedAt: number;
  /**
   * The id a new run gets, where the adapter names runs itself (the edge: a run is its Durable
   * Object's name, which the Worker passes along); a random one otherwise.
   */
  runIdFor?: (request: Request) => string | undefined;
  /** The runtime's own figures for /metrics, in Prometheus text (Node: event-loop delay). */
  runtimeMetrics?: () => string;
  /** The largest body that creates a run (a checkpoint with it): DEFAULT_MAX_CHECKPOINT_BYTES. */
  maxCheckpointBytes?: number;
  /** The address a request comes from (for per-address limits); "unknown" when absent. */
  addressOf?: (c: Context) => string;
  /** Bounds the open event streams: 1,024 in all and 16 per address unless given. */
  streams?: StreamLimit;
}

/**
 * A server-sent event stream: `read()` is sent at once, then again each time `arm()`'s promise
 * settles (armed before the read, so no change falls between), at least every 15 s and at most
 * once per `coalesceMs`, until the client goes.
 */
export function liveEvents(
  c: Context,
  event: string,
  source: { arm: () => Promise<unknown>; read: () => unknown; coalesceMs: number },
  limit?: { streams: StreamLimit; address: string },
): Response {
  const release = limit ? limit.streams.acquire(limit.address) : () => {};
  if (!release)
    return c.json(
      { error: "rateLimited", message: "too many open event streams; close some and retry" },
      429,
      { "retry-after": "5" },
    );
  return streamSSE(c, async (stream) => {
    let open = true;
    stream.onAbort(() => {
      open = false;
      release();
    });
    try {
      while (open) {
        const change = source.arm();
        await stream.writeSSE({ event, data: JSON.stringify(await source.read()) });
        await Promise.race([change, stream.sleep(15_000)]);
        if (source.coalesceMs > 0) await stream.sleep(source.coalesceMs);
      }
    } finally {
      release();
    }
  });
}

export function createApi(coordinator: Coordinator, options: ApiOptions) {
  const api = new Hono();
  const streams = options.streams ?? new StreamLimit();
  const limitFor = (c: Context) => ({
    streams,
    address: options.addressOf?.(c) ?? "unknown",
  });

  const admin = async (
    c: Parameters<Parameters<typeof api.use>[1]>[0],
    next: () => Promise<void>,
  ) => {
    if (!isAdmin(c.req.header("authorization"), options.adminToken))
      return c.json(UNAUTHORIZED, 401);
    await next();
  };

  const runOr404 = (id: string) => coordinator.runs.get(id);

  api.get("/health", (c) =>
    c.json({
      ok: true,
      uptimeSeconds: Math.round((coordinator.clock.now() - options.startedAt) / 1000),
      runs: coordinator.runs.size,
    }),
  );

  api.get("/metrics", (c) =>
    c.text(prometheus(coordinator) + (options.runtimeMetrics?.() ?? ""), 200, {
      "content-type": "text/plain; version=0.0.4",
    }),
  );

  api.get("/api/runs", (c) =>
    c.json({
      runs: [...coordinator.runs.values()].map((r) => summary(r.status(coordinator.clock.now()))),
    }),
  );

  // JSON: the run's config. A multipart form: the config (`config`, JSON) and a checkpoint
  // (`checkpoint`: safetensors or Cap'n Proto) whose parameters the run starts from; with no
  // model in the config, the checkpoint's own.
  api.post(
    "/api/runs",
    admin,
    // A form carries a checkpoint; a JSON config alone stays under 1 MiB, refused as it streams.
    (c, next) => {
      const form = c.req.header("content-type")?.startsWith("multipart/form-data") === true;
      const maxSize = form ? (options.maxCheckpointBytes ?? DEFAULT_MAX_CHECKPOINT_BYTES) : 1 << 20;
      return bodyLimit({
        maxSize,
        onError: (c) =>
          c.json({ error: "too large", problems: [`the body is over ${maxSize} bytes`] }, 413),
      })(c, next);
    },
    async (c) => {
      const invalid = (problems: string[]) => c.json({ error: "invalid", problems }, 400);
      let body: unknown;
      let checkpoint: Uint8Array | undefined;
      if (c.req.header("content-type")?.startsWith("multipart/form-data")) {
        const form = await c.req.parseBody().catch(() => undefined);
        const config = form?.config;
        const file = form?.checkpoint;
        if (typeof config !== "string") return invalid(["config: the form has no run config"]);
        if (!(file instanceof File))
          return invalid(["checkpoint: the form has no checkpoint file"]);
        checkpoint = new Uint8Array(await file.arrayBuffer());
        body = parseJson(config);
      } else {
        body = parseJson(await c.req.text());
      }
      if (!body || typeof body !== "object" || Array.isArray(body))
        return invalid(["the body must be a JSON object"]);
      const { start, ...input } = body as RunConfigInput & { start?: boolean };
      try {
        let initial: Float32Array | undefined;
        if (checkpoint) {
          const read = readCheckpoint(checkpoint);
          if (input.model === undefined && read.model) input.model = read.model;
          const config = resolveRunConfig(input);
          initial = checkpointParameters(config.model, read);
        }
        const run = coordinator.createRun(
          input,
          start !== false,
          options.runIdFor?.(c.req.raw),
          initial,
        );
        return c.json(run.status(coordinator.clock.now(), "admin"), 201);
      } catch (e) {
        if (e instanceof RunConfigError) return invalid(e.problems);
        throw e;
      }
    },
  );

  // Public: the run and its leaderboard. With the admin token: every session's row too.
  api.get("/api/runs/:id", (c) => {
    const run = runOr404(c.req.param("id"));
    if (!run) return c.json({ error: "not found" }, 404);
    const view = isAdmin(c.req.header("authorization"), options.adminToken) ? "admin" : "public";
    return c.json(run.status(coordinator.clock.now(), view));
  });

  // The admin's workers table, a page at a time, with the whole crowd summarized (run.ts).
  api.get("/api/runs/:id/workers", admin, (c) => {
    const run = runOr404(c.req.param("id"));
    if (!run) return c.json({ error: "not found" }, 404);
    const show = c.req.query("show") ?? "all";
    if (show !== "all" && show !== "connected" && show !== "quarantined")
      return c.json({ error: "bad request", message: "show: all, connected or quarantined" }, 400);
    return c.json(
      run.workersPage(coordinator.clock.now(), {
        show,
        offset: Number(c.req.query("offset") ?? 0),
        limit: Number(c.req.query("limit") ?? 50),
      }),
    );
  });

  api.get("/api/runs/:id/metrics", (c) => {
    const run = runOr404(c.req.param("id"));
    if (!run) return c.json({ error: "not found" }, 404);
    const limit = Math.min(100_000, Math.max(1, Number(c.req.query("limit") ?? 10_000) || 10_000));
    return c.json({ runId: run.id, points: coordinator.store.metrics(run.id, limit) });
  });

  // The run's dataset shard, for contributors (leases name batches in it by offsets). Public, as
  // the data is for anyone who trains; immutable for the run, so caches may keep it.
  api.get("/api/runs/:id/shard", (c) => {
    const run = runOr404(c.req.param("id"));
    if (!run) return c.json({ error: "not found" }, 404);
    const { bytes, sha256 } = run.data;
    const etag = `"${sha256}"`;
    if (c.req.header("if-none-match") === etag) return c.body(null, 304);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/octet-stream",
      "cache-control": "public, max-age=31536000, immutable",
      etag,
    });
  });

  // The runs table, live: the list at once, then again on every change to any run.
  api.get("/api/events", (c) =>
    liveEvents(
      c,
      "runs",
      {
        arm: () => coordinator.nextChange("*"),
        read: () => ({
          runs: [...coordinator.runs.values()].map((r) =>
            summary(r.status(coordinator.clock.now())),
          ),
        }),
        coalesceMs: 500,
      },
      limitFor(c),
    ),
  );

  api.get("/api/admin/check", admin, (c) => c.json({ ok: true }));

  // Live status for the dashboard and the contributor page, pushed as server-sent events: one
  // `status` event at once, then one per change (coalesced to at most five a second), each with
  // the metric points not sent before; a quiet run still gets one every 15 s. Two cursors: a
  // version's evaluation lands after later versions' commits (it runs off the commit path), so
  // evaluation points are sent by the last evaluated version sent, commit points by theirs.
  api.get("/api/runs/:id/events", (c) => {
    const run = runOr404(c.req.param("id"));
    if (!run) return c.json({ error: "not found" }, 404);
    let sentVersion = -1;
    let sentEvaluation = -1;
    return liveEvents(
      c,
      "status",
      {
        arm: () => coordinator.nextChange(run.id),
        read: () => {
          const points = coordinator.store
            .metrics(run.id, sentVersion < 0 ? 10_000 : 1_000)
            .filter((p) =>
              p.testLoss === undefined ? p.version > sentVersion : p.version > sentEvaluation,
            );
          for (const p of points)
            if (p.testLoss === undefined) sentVersion = Math.max(sentVersion, p.version);
            else sentEvaluation = Math.max(sentEvaluation, p.version);
          return { status: run.status(coordinator.clock.now()), points };
        },
        coalesceMs: 200,
      },
      limitFor(c),
    );
  });

  for (const [action, state] of [
    ["pause", "paused"],
    ["resume", "running"],
    ["stop", "stopped"],
  ] as const) {
    api.post(`/api/runs/:id/${action}`, admin, (c) => {
      const run = runOr404(c.req.param("id"));
      if (!run) return c.json({ error: "not found" }, 404);
      try {
        coordinator.setRunState(run.id, state);
      } catch (e) {
        return c.json({ error: "conflict", message: (e as Error).message }, 409);
      }
      return c.json(run.status(coordinator.clock.now(), "admin"));
    });
  }

  // The parameters with the model spec, as one Cap'n Proto Message (a Welcome), or with
  // `?format=safetensors` as safetensors (checkpoint.ts).
  api.get("/api/runs/:id/checkpoint", admin, (c) => {
    const run = runOr404(c.req.param("id"));
    if (!run) return c.json({ error: "not found" }, 404);
    const format = c.req.query("format") ?? "capnp";
    if (format !== "capnp" && format !== "safetensors")
      return c.json({ error: "bad request", message: "format: capnp or safetensors" }, 400);
    const { bytes, fileName } = encodeCheckpoint(
      run,
      format,
      coordinator.clock.now(),
      coordinator.maxFrameBytes(),
    );
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "content-type": format === "capnp" ? "application/x-capnp" : "application/octet-stream",
      "content-disposition": `attachment; filename="${fileName}"`,
    });
  });

  return api;
}

/** A run's line in the runs list: no leaderboard, its connected contributors as a count. */
function summary(s: ReturnType<import("./run.ts").Run["status"]>) {
  const { config, leaderboard: _leaders, contributors, ...rest } = s;
  return {
    ...rest,
    model: config.model.name,
    dataset: config.dataset,
    strategy: config.strategy.kind,
    workers: contributors.connected,
  };
}

/** The Prometheus text exposition of the coordinator's counters. */
export function prometheus(coordinator: Coordinator): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: Array<[string, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const runs = [...coordinator.runs.values()];
  const label = (o: Record<string, string>) =>
    `{${Object.entries(o)
      .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`)
      .join(",")}}`;
  metric(
    "pangea_sessions",
    "gauge",
    "Connected sessions per run.",
    runs.map((r) => [
      label({ run: r.id }),
      [...r.sessions.values()].filter((s) => s.connected).length,
    ]),
  );
  metric(
    "pangea_version",
    "gauge",
    "The run's committed version.",
    runs.map((r) => [label({ run: r.id }), r.record.version]),
  );
  metric(
    "pangea_updates_accepted_total",
    "counter",
    "Updates accepted.",
    runs.map((r) => [label({ run: r.id }), r.record.counters.updatesAccepted]),
  );
  metric(
    "pangea_updates_refused_total",
    "counter",
    "Updates refused, by reason.",
    runs.flatMap((r) =>
      Object.entries(r.record.counters.updatesRefused).map(
        ([reason, n]) => [label({ run: r.id, reason }), n] as [string, number],
      ),
    ),
  );
  metric(
    "pangea_lease_reissues_total",
    "counter",
    "Leases that expired and were handed out again.",
    runs.map((r) => [label({ run: r.id }), r.record.counters.leaseReissues]),
  );
  metric(
    "pangea_samples_total",
    "counter",
    "Training samples in committed versions.",
    runs.map((r) => [label({ run: r.id }), r.record.counters.samples]),
  );
  metric(
    "pangea_samples_per_second",
    "gauge",
    "Samples per second over the latest version.",
    runs.map((r) => [
      label({ run: r.id }),
      coordinator.store.metrics(r.id, 1)[0]?.samplesPerSecond ?? 0,
    ]),
  );
  metric(
    "pangea_test_accuracy",
    "gauge",
    "The coordinator's latest held-out accuracy.",
    runs.map((r) => [label({ run: r.id }), r.record.evaluation?.accuracy ?? 0]),
  );
  metric(
    "pangea_run_bytes_total",
    "counter",
    "A run's bytes: WebSocket in and out of the coordinator, and parameter frames and update parts between peers.",
    runs.flatMap((r) =>
      (
        [
          ["coordinator_in", r.traffic.bytesIn],
          ["coordinator_out", r.traffic.bytesOut],
          ["peers", r.traffic.peerBytes],
        ] as const
      ).map(([path, n]) => [label({ run: r.id, path }), n] as [string, number]),
    ),
  );
  const k = coordinator.counters;
  metric("pangea_bytes_in_total", "counter", "WebSocket bytes received.", [["", k.bytesIn]]);
  metric("pangea_bytes_out_total", "counter", "WebSocket bytes sent.", [["", k.bytesOut]]);
  metric("pangea_frames_refused_total", "counter", "Frames that failed to decode.", [
    ["", k.framesRefused],
  ]);
  metric(
    "pangea_parameter_frames_total",
    "counter",
    "Parameter frames sent to sessions that were behind, with their next lease.",
    [["", k.parameterFrames]],
  );
  metric(
    "pangea_joins_refused_total",
    "counter",
    "Joins refused: a second join on a connection, or an address over its limits.",
    [["", k.joinsRefused]],
  );
  metric("pangea_signals_total", "counter", "WebRTC signals, relayed or refused.", [
    ['{outcome="relayed"}', k.signalsRelayed],
    ['{outcome="refused"}', k.signalsRefused],
  ]);
  metric(
    "pangea_reduce_groups_total",
    "counter",
    "Groups of declared updates reduced among peers and taken, and groups that fell back to whole updates.",
    runs.flatMap((r) =>
      (
        [
          ["reduced", r.record.counters.groupsReduced ?? 0],
          ["fallback", r.record.counters.groupFallbacks ?? 0],
        ] as const
      ).map(([outcome, n]) => [label({ run: r.id, outcome }), n] as [string, number]),
    ),
  );
  metric(
    "pangea_peer_parameter_frames_total",
    "counter",
    "Parameter frames a lease named a peer for, and those the receiver then got from the coordinator.",
    [
      ['{outcome="named"}', k.peerParameterFrames],
      ...Object.entries(k.peerFallbacks).map(
        ([failure, n]) => [`{outcome="fallback",failure="${failure}"}`, n] as [string, number],
      ),
    ],
  );
  metric("pangea_peer_strikes_total", "counter", "Strikes for serving bad parameter bytes.", [
    ["", k.peerStrikes],
  ]);
  metric(
    "pangea_leases_deferred_total",
    "counter",
    "Lease requests deferred because the connection had too much queued.",
    [["", k.leasesDeferred]],
  );
  return `${lines.join("\n")}\n`;
}
