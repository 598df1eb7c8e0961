// The real coordinator as a child process on 127.0.0.1, for tests and benchmarks that kill it,
// restart it over the same data, and talk to its API. Two backends behind one interface:
//   node  `pangea serve` (SQLite in the data directory)
//   edge  `wrangler dev` (the Worker and a Durable Object per run, storage persisted to the
//         data directory), killed as a process group since wrangler runs workerd beneath it.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const cli = join(import.meta.dirname, "../node/cli.ts");
const repo = join(import.meta.dirname, "../../..");
const wrangler = join(repo, "edge/node_modules/.bin/wrangler");

export type Backend = "node" | "edge";

/** wrangler refuses to start while wrangler.toml's assets directory is missing, as it is on a
 * fresh clone before `pnpm build:web` (the unit suite runs before the e2e one builds it). */
function ensureWebBuilt() {
  if (existsSync(join(repo, "client-web/dist/index.html"))) return;
  execFileSync("pnpm", ["--filter", "@pangea/client-web", "build"], { cwd: repo, stdio: "ignore" });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  /** http://localhost:<port>: a secure context for the browser, as DESIGN.md asks. */
  readonly url: string;
  readonly token: string;
  readonly dataDir: string;
  process: ChildProcess | undefined;
  /** Starts (or restarts) the server over the same data directory; resolves once /health answers. */
  start(): Promise<void>;
  /** SIGKILL: no flush, no goodbye. */
  kill(): Promise<void>;
  /** An API call with the admin token; JSON bodies. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** Kills the server and removes its data directory. */
  dispose(): Promise<void>;
  /** The server process's resident memory in MiB (Linux; on the edge, wrangler's own only). */
  rssMiB(): number;
}

export async function serverProcess(
  options: {
    demo?: boolean;
    token?: string;
    log?: boolean;
    env?: Record<string, string>;
    backend?: Backend;
    /** The edge: where wrangler dev serves the Worker isolate's inspector (Chrome DevTools protocol). */
    inspectorPort?: number;
    /** Node: flags for the coordinator's node process (`--cpu-prof`, which NODE_OPTIONS refuses). */
    nodeArgs?: string[];
  } = {},
): Promise<ServerProcess> {
  const backend = options.backend ?? "node";
  if (backend === "edge") ensureWebBuilt();
  const port = await freePort();
  const token = options.token ?? "test-admin-token";
  const dataDir = mkdtempSync(join(tmpdir(), "pangea-server-"));
  let demoCreated = false;
  const url = `http://localhost:${port}`;
  const handle: ServerProcess = {
    url,
    token,
    dataDir,
    process: undefined,
    async start() {
      const child =
        backend === "node"
          ? spawn(
              process.execPath,
              [...(options.nodeArgs ?? []), "--import", "tsx", cli, "serve"],
              {
                env: {
                  ...process.env,
                  PANGEA_DATA_DIR: dataDir,
                  PORT: String(port),
                  PANGEA_ADMIN_TOKEN: token,
                  PANGEA_DEMO: options.demo ? "1" : "0",
                  ...options.env,
                },
                stdio: options.log ? "inherit" : "ignore",
              },
            )
          : spawn(
              wrangler,
              [
                "dev",
                "--config",
                join(repo, "wrangler.toml"),
                "--port",
                String(port),
                "--ip",
                "127.0.0.1",
                "--persist-to",
                dataDir,
                "--var",
                `PANGEA_ADMIN_TOKEN:${token}`,
                // The Worker sees vars, not the process environment: PANGEA_* settings go as vars.
                ...Object.entries(options.env ?? {})
                  .filter(([k]) => k.startsWith("PANGEA_"))
                  .flatMap(([k, v]) => ["--var", `${k}:${v}`]),
                "--show-interactive-dev-session=false",
                ...(options.inspectorPort
                  ? ["--inspector-port", String(options.inspectorPort)]
                  : []),
              ],
              {
                cwd: repo,
                env: { ...process.env, WRANGLER_SEND_METRICS: "false", ...options.env },
                stdio: options.log ? "inherit" : "ignore",
                detached: true,
              },
            );
      handle.process = child;
      for (let i = 0; i < 600; i++) {
        if (child.exitCode !== null) throw new Error(`the coordinator exited (${child.exitCode})`);
        const up = await fetch(`${url}/health`).then(
          (r) => r.ok,
          () => false,
        );
        if (up) {
          // The edge has no demo of its own: the first start creates the same one.
          if (backend === "edge" && options.demo && !demoCreated) {
            demoCreated = true;
            const { DEMO_RUN } = await import("../node/server.ts");
            const created = await handle.api("/api/runs", {
              method: "POST",
              body: JSON.stringify(DEMO_RUN),
            });
            if (!created.ok) throw new Error(`creating the demo run: ${await created.text()}`);
          }
          return;
        }
        await sleep(100);
      }
      throw new Error("the coordinator did not come up in 60 s");
    },
    async kill() {
      const child = handle.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const dead = new Promise((r) => child.once("exit", r));
      if (backend === "edge") process.kill(-child.pid!, "SIGKILL");
      else child.kill("SIGKILL");
      await dead;
    },
    api(path, init = {}) {
      return fetch(`${url}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          ...init.headers,
        },
      });
    },
    async dispose() {
      await handle.kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
    rssMiB() {
      const status = readFileSync(`/proc/${handle.process!.pid}/status`, "utf8");
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
    },
  };
  await handle.start();
  return handle;
}
