// The edge's Worker: the same HTTP API and /ws as the Node server, in front of one Durable
// Object per run (RunObject, which serves the core's own API for its run) and a run index.
// The built web UI is served as static assets; only the API, /ws and /health reach this code.
import {
  adminFailureLimit,
  corsFor,
  DatasetImportError,
  datasetApi,
  edgeAddress,
  isAdmin,
  liveEvents,
  parseOrigins,
  socketOriginAllowed,
  StreamLimit,
  securityHeaders,
  UNAUTHORIZED,
} from "@pangea/coordinator/core";
import { Hono } from "hono";
import { type Env, RUN_ID_HEADER, RunObject } from "./run-object.ts";
import { EDGE_DATASET_MAX_BYTES, edgeDatasets, R2Datasets } from "./datasets.ts";
import { LimitObject, limitsFor, STREAM_MAX_MS } from "./limits.ts";
import { mergeExpositions } from "./metrics.ts";
import { RunIndex } from "./run-index.ts";

export { LimitObject, RunIndex, RunObject };

type App = { Bindings: Env };
const app = new Hono<App>();

// Before every route, as on Node (core/surface.ts). The wrong-token count and each address's
// open event streams are held for every isolate by a LimitObject (limits.ts), consulted only by
// requests that carry a token or open a stream; the total of streams an isolate holds is its
// own. Static assets bypass the Worker: client-web/public/_headers gives them the same headers.
app.use("*", securityHeaders());
app.use("/api/*", async (c, next) => corsFor(parseOrigins(c.env.PANGEA_CORS_ORIGINS))(c, next));
app.use("*", async (c, next) =>
  adminFailureLimit(
    (address, ok) => limitsFor(c.env.LIMITS, address).admin(address, ok),
    () => c.env.PANGEA_ADMIN_TOKEN ?? "",
    edgeAddress,
  )(c, next),
);
const streams = new StreamLimit(1024, 1024);
app.get("*", async (c, next) => {
  // The run list's stream here, and each run's from its object: one bound per address for both.
  if (!c.req.path.endsWith("/events")) return next();
  const address = edgeAddress(c);
  const limits = limitsFor(c.env.LIMITS, address);
  const id = crypto.randomUUID();
  const maxMs = Number(c.env.PANGEA_STREAM_MAX_MS) || STREAM_MAX_MS;
  if (!(await limits.openStream(address, id, maxMs)))
    return c.json(
      { error: "rateLimited", message: "too many open event streams; close some and retry" },
      429,
      { "retry-after": "5" },
    );
  await next();
  const body = c.res.body;
  if (!body || c.res.status !== 200) {
    await limits.closeStream(address, id);
    return;
  }
  // The stream's place is given back when the watcher goes, or after maxMs, when this ends it
  // (EventSource reconnects). Locally (wrangler dev, the test pool) a watcher's going is not
  // passed on to the Worker, so there only the end frees the place.
  const reader = body.getReader();
  let released = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const release = () => {
    if (released) return;
    released = true;
    if (timer !== null) clearTimeout(timer);
    c.executionCtx.waitUntil(limits.closeStream(address, id));
  };
  const watched = new ReadableStream<Uint8Array>({
    start(controller) {
      timer = setTimeout(() => {
        release();
        controller.close();
        void reader.cancel();
      }, maxMs);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (released) return;
      if (done) {
        release();
        controller.close();
      } else controller.enqueue(value);
    },
    cancel(reason) {
      release();
      return reader.cancel(reason);
    },
  });
  c.res = new Response(watched, c.res);
});

const index = (env: Env) => env.INDEX.get(env.INDEX.idFromName("index"));
const runObject = (env: Env, id: string) => env.RUNS.get(env.RUNS.idFromName(id));

/** Every run's summary, newest first, each from its own object. */
async function summaries(env: Env): Promise<unknown[]> {
  const ids = await index(env).list();
  const lists = await Promise.all(
    ids.map(async ({ id }) => {
      const response = await runObject(env, id).fetch("https://run/api/runs");
      return ((await response.json()) as { runs: unknown[] }).runs;
    }),
  );
  return lists.flat();
}

app.get("/health", (c) => c.json({ ok: true, edge: true }));

app.get("/api/runs", async (c) => c.json({ runs: await summaries(c.env) }));

// Prometheus: every run object's own exposition, merged.
app.get("/metrics", async (c) => {
  const ids = await index(c.env).list();
  const texts = await Promise.all(
    ids.map(async ({ id }) => (await runObject(c.env, id).fetch("https://run/metrics")).text()),
  );
  return c.text(mergeExpositions(texts), 200, { "content-type": "text/plain; version=0.0.4" });
});

app.get("/api/admin/check", (c) =>
  isAdmin(c.req.header("authorization"), c.env.PANGEA_ADMIN_TOKEN ?? "")
    ? c.json({ ok: true })
    : c.json(UNAUTHORIZED, 401),
);

// A new run is created by its own object's API (the same checks and refusals as on Node),
// named by the Worker, which lists it once it exists.
app.post("/api/runs", async (c) => {
  const id = `run_${crypto.randomUUID().replaceAll("-", "").slice(0, 18)}`;
  const headers = new Headers(c.req.raw.headers);
  headers.set(RUN_ID_HEADER, id);
  const created = await runObject(c.env, id).fetch(
    new Request(c.req.raw.url, { method: "POST", headers, body: c.req.raw.body }),
  );
  if (created.status === 201) await index(c.env).add(id, Date.now());
  return created;
});

// The runs table, live. Each run's own events come straight from its object; this list has
// no single object to wait on, so it is rebuilt every 2 s while someone watches.
app.get("/api/events", (c) =>
  liveEvents(
    c,
    "runs",
    {
      arm: () => new Promise((r) => setTimeout(r, 2000)),
      read: async () => ({ runs: await summaries(c.env) }),
      coalesceMs: 0,
    },
    { streams, address: edgeAddress(c) },
  ),
);

// Everything of one run (status, metrics, events, pause/resume/stop, checkpoint) is its object's.
app.all("/api/runs/:id/*", (c) => runObject(c.env, c.req.param("id")).fetch(c.req.raw));
app.get("/api/runs/:id", (c) => runObject(c.env, c.req.param("id")).fetch(c.req.raw));

// The datasets: the built-in ones, from the static assets, and those researchers bring, in R2
// (the DATASETS binding). A deployment without the bucket checks an upload like any other and
// then refuses it, saying what is missing.
app.all("/api/datasets", (c) =>
  datasetApi({
    adminToken: c.env.PANGEA_ADMIN_TOKEN ?? "",
    builtIn: () => edgeDatasets(c.env.ASSETS),
    maxBytes: Number(c.env.PANGEA_DATASET_MAX_BYTES) || EDGE_DATASET_MAX_BYTES,
    storage: c.env.DATASETS
      ? new R2Datasets(c.env.DATASETS)
      : {
          list: async () => [],
          get: async () => undefined,
          put: async () => {
            throw new DatasetImportError([
              "this coordinator keeps no brought datasets: bind an R2 bucket as DATASETS (see wrangler.toml)",
            ]);
          },
        },
  }).fetch(c.req.raw),
);

// A tab joins the run it names (?run=), else the newest one.
app.get("/ws", async (c) => {
  const allowed = parseOrigins(c.env.PANGEA_CORS_ORIGINS);
  if (!socketOriginAllowed(c.req.header("origin"), new URL(c.req.url).host, allowed))
    return c.json({ error: "this page's origin may not join (PANGEA_CORS_ORIGINS)" }, 403);
  const named = c.req.query("run");
  const id = named || (await index(c.env).list())[0]?.id;
  if (!id) return c.json({ error: "no run to join yet" }, 503);
  return runObject(c.env, id).fetch(c.req.raw);
});

app.all("*", (c) => (c.env.ASSETS ? c.env.ASSETS.fetch(c.req.raw) : c.notFound()));

export default app;
