// The edge's Worker: the same HTTP API and /ws as the Node server, in front of one Durable
// Object per run (RunObject, which serves the core's own API for its run) and a run index.
// The built web UI is served as static assets; only the API, /ws and /health reach this code.
import { isAdmin, UNAUTHORIZED } from "@pangea/coordinator/core";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { type Env, RunObject } from "./run-object.ts";
import { RunIndex } from "./run-index.ts";

export { RunIndex, RunObject };

type App = { Bindings: Env };
const app = new Hono<App>();

const index = (env: Env) => env.INDEX.get(env.INDEX.idFromName("index"));
const runObject = (env: Env, id: string) => env.RUNS.get(env.RUNS.idFromName(id));

const authorized = (env: Env, header: string | undefined) =>
  isAdmin(header, env.PANGEA_ADMIN_TOKEN ?? "");

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

app.get("/api/admin/check", (c) =>
  authorized(c.env, c.req.header("authorization"))
    ? c.json({ ok: true })
    : c.json(UNAUTHORIZED, 401),
);

app.post("/api/runs", async (c) => {
  if (!authorized(c.env, c.req.header("authorization"))) return c.json(UNAUTHORIZED, 401);
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return c.json({ error: "invalid", problems: ["the body must be a JSON object"] }, 400);
  }
  if (!body || typeof body !== "object" || Array.isArray(body))
    return c.json({ error: "invalid", problems: ["the body must be a JSON object"] }, 400);
  const id = `run_${crypto.randomUUID().replaceAll("-", "").slice(0, 18)}`;
  const created = await runObject(c.env, id).fetch("https://run/internal/create", {
    method: "POST",
    body: JSON.stringify({ ...body, id }),
  });
  if (created.status === 201) await index(c.env).add(id, Date.now());
  return new Response(created.body, created);
});

// The runs table, live. Each run's own events come straight from its object; this list has
// no single object to wait on, so it is rebuilt every 2 s while someone watches.
app.get("/api/events", (c) =>
  streamSSE(c, async (stream) => {
    let open = true;
    stream.onAbort(() => {
      open = false;
    });
    while (open) {
      await stream.writeSSE({
        event: "runs",
        data: JSON.stringify({ runs: await summaries(c.env) }),
      });
      await stream.sleep(2000);
    }
  }),
);

// Everything of one run (status, metrics, events, pause/resume/stop, checkpoint) is its object's.
app.all("/api/runs/:id/*", (c) => runObject(c.env, c.req.param("id")).fetch(c.req.raw));
app.get("/api/runs/:id", (c) => runObject(c.env, c.req.param("id")).fetch(c.req.raw));

// A tab joins the run it names (?run=), else the newest one.
app.get("/ws", async (c) => {
  const named = c.req.query("run");
  const id = named || (await index(c.env).list())[0]?.id;
  if (!id) return c.json({ error: "no run to join yet" }, 503);
  return runObject(c.env, id).fetch(c.req.raw);
});

app.all("*", (c) => (c.env.ASSETS ? c.env.ASSETS.fetch(c.req.raw) : c.notFound()));

export default app;
