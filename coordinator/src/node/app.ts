// The Node server's own pages beside the API (core/http-api.ts): the built web UI (the
// contributor page at /, the dashboard at /admin), the schema, and a frame inspector that
// decodes a posted Cap'n Proto frame with the same codec the WebSocket uses, answering its typed
// refusal as JSON.
import { existsSync, readFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { decodeMessage, defaultDecodeLimits, type Tensor } from "@pangea/shared";
import { getConnInfo } from "@hono/node-server/conninfo";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { CommitGate } from "../core/coordinator.ts";
import { AdminFailureLimit, adminFailureLimit, corsFor, securityHeaders } from "../core/surface.ts";

const schemaText = readFileSync(
  new URL("../../../shared/schema/pangea.capnp", import.meta.url),
  "utf8",
);

/** A tensor as JSON: its shape and a few values, never megabytes of numbers. */
function summarize(t: Tensor) {
  return {
    name: t.name,
    shape: t.shape,
    dtype: t.dtype,
    wire: t.wire ?? t.dtype,
    scale: t.scale,
    head: Array.from(t.data.subarray(0, 8)),
  };
}

function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: value.byteLength };
  if (Array.isArray(value)) return value.map(toJson);
  if (value && typeof value === "object") {
    if ("shape" in value && "data" in value) return summarize(value as Tensor);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  }
  return value;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
};

/** The built UI (client-web/dist, or PANGEA_WEB_DIR). */
export const defaultWebDir = new URL("../../../client-web/dist", import.meta.url).pathname;

/** The socket's own address: a header could be forged by anyone (a proxy in front would need a trusted-proxy option). */
export function nodeAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown"; // a request made in process (app.request), with no socket
  }
}

export interface AppOptions {
  webDir?: string;
  /** The admin token, for counting wrong ones per address. */
  adminToken: string;
  /** Origins allowed to call the API from their pages (PANGEA_CORS_ORIGINS); none by default. */
  corsOrigins?: readonly string[];
  /** Wrong admin tokens allowed per address and minute (PANGEA_ADMIN_FAILURES_PER_MINUTE, 10). */
  adminFailuresPerMinute?: number;
  /** Group commit: an API answer waits until what its request wrote is durable. */
  commits?: CommitGate;
}

/** The largest frame the open decoder takes (a debugging aid, not a way to park memory). */
const DECODE_MAX_BYTES = 16 << 20;

export function createApp(options: AppOptions) {
  const webDir = options.webDir ?? defaultWebDir;
  const app = new Hono();
  const built = existsSync(join(webDir, "index.html"));
  // Before every route: headers on every response, CORS, then the wrong-token limit.
  app.use("*", securityHeaders());
  app.use("/api/*", corsFor(options.corsOrigins ?? []));
  const gate = options.commits;
  if (gate)
    app.use("/api/*", async (_, next) => {
      await next();
      if (gate.pending) await new Promise<void>((r) => gate.whenDurable(r));
    });
  const failures = new AdminFailureLimit({
    maxFailures: options.adminFailuresPerMinute ?? 10,
    windowMs: 60_000,
    maxAddresses: 10_000,
  });
  app.use(
    "*",
    adminFailureLimit(
      (address, ok) => failures.attempt(address, ok),
      () => options.adminToken,
      nodeAddress,
    ),
  );

  const file = (path: string) => {
    const full = normalize(join(webDir, path));
    if (!full.startsWith(normalize(webDir)) || !existsSync(full)) return undefined;
    return {
      body: readFileSync(full),
      type: CONTENT_TYPES[extname(full)] ?? "application/octet-stream",
    };
  };
  if (built) {
    // Hashed bundles never change under their name.
    app.get("/assets/*", (c) => {
      const f = file(c.req.path);
      if (!f) return c.notFound();
      return c.body(f.body, 200, {
        "content-type": f.type,
        "cache-control": "public, max-age=31536000, immutable",
      });
    });
    const page = (path: string) => (c: Context) => c.html(readFileSync(join(webDir, path), "utf8"));
    app.get("/", page("index.html"));
    app.get("/admin", page("admin/index.html"));
    app.get("/admin/*", page("admin/index.html"));
  }

  app.get("/schema/pangea.capnp", (c) => c.text(schemaText));

  app.post(
    "/api/wire/decode",
    bodyLimit({
      maxSize: Math.min(DECODE_MAX_BYTES, defaultDecodeLimits.maxFrameBytes),
      onError: (c) =>
        c.json(
          { ok: false, error: { code: "frame-too-large", message: "frame over 16 MiB" } },
          413,
        ),
    }),
    async (c) => {
      const frame = new Uint8Array(await c.req.arrayBuffer());
      const result = decodeMessage(frame);
      if (!result.ok) {
        return c.json(
          { ok: false, error: { code: result.error.code, message: result.error.message } },
          400,
        );
      }
      return c.json({ ok: true, bytes: frame.byteLength, message: toJson(result.message) });
    },
  );

  // Without a built UI (`pnpm --filter @pangea/client-web build`), a plain page says what is here.
  app.get("/", (c) =>
    c.html(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pangea</title>
</head><body>
<h1>Pangea</h1>
<p>A volunteer compute network for training neural networks: open the contributor page, and your
browser tab's GPU helps train a shared model.</p>
<p>The web UI is not built: run <code>pnpm --filter @pangea/client-web build</code> and
restart. Meanwhile headless contributors can train
(<code>pnpm pangea worker http://localhost:8080</code>).</p>
<ul>
<li><a href="/api/runs">/api/runs</a> — the runs and how far each has come</li>
<li><a href="/metrics">/metrics</a> — Prometheus metrics</li>
<li><a href="/health">/health</a> — is the coordinator up</li>
<li><a href="/schema/pangea.capnp">/schema/pangea.capnp</a> — the wire protocol</li>
<li><code>POST /api/wire/decode</code> — decode a Cap'n Proto frame and see what it says</li>
</ul>
</body></html>`),
  );

  return app;
}
