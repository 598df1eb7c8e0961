// The hardened HTTP surface of the real Node server: security headers on the pages the built UI
// is served with, CORS closed by default and open to configured origins only, wrong admin tokens
// limited per address, and open event streams bounded per address.
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY } from "../core/surface.ts";
import { startServer } from "./server.ts";

const TOKEN = "surface-admin-token";
let dir: string;
let server: Awaited<ReturnType<typeof startServer>>;

/** One HTTP request from a chosen local address (the limits are per address). */
function from(
  address: string,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  close: () => void;
}> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        headers,
        localAddress: address,
      },
      (res) => {
        // Event streams stay open: the caller closes them.
        if (!String(res.headers["content-type"]).startsWith("text/event-stream")) res.resume();
        resolve({ status: res.statusCode!, headers: res.headers, close: () => req.destroy() });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pangea-surface-"));
  server = await startServer({
    dataDir: dir,
    port: 0,
    hostname: "127.0.0.1",
    adminToken: TOKEN,
    demo: true,
    corsOrigins: ["http://lab.example"],
    log: () => {},
  });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the Node server's surface", () => {
  it("sends the security headers with pages, assets and the API", async () => {
    for (const path of ["/", "/admin", "/api/runs", "/health", "/metrics", "/no-such-page"]) {
      const res = await from("127.0.0.1", path);
      expect(res.headers["content-security-policy"], path).toBe(CONTENT_SECURITY_POLICY);
      expect(res.headers["x-frame-options"], path).toBe("DENY");
      expect(res.headers["x-content-type-options"], path).toBe("nosniff");
      expect(res.headers["referrer-policy"], path).toBe("no-referrer");
    }
  });

  it("answers cross-origin calls only for the configured origins", async () => {
    const lab = await from("127.0.0.1", "/api/runs", { origin: "http://lab.example" });
    expect(lab.headers["access-control-allow-origin"]).toBe("http://lab.example");
    const evil = await from("127.0.0.1", "/api/runs", { origin: "http://evil.example" });
    expect(evil.headers["access-control-allow-origin"]).toBeUndefined();
    const preflight = await from(
      "127.0.0.1",
      "/api/runs",
      { origin: "http://evil.example", "access-control-request-method": "POST" },
      "OPTIONS",
    );
    expect(preflight.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("lets a WebSocket join from its own pages, configured origins and headless clients only", async () => {
    const upgrade = (origin?: string) =>
      new Promise<number>((resolve, reject) => {
        const url = new URL("/ws", server.url);
        const req = request({
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          headers: {
            connection: "Upgrade",
            upgrade: "websocket",
            "sec-websocket-version": "13",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            ...(origin ? { origin } : {}),
          },
        });
        req.on("upgrade", (_res, socket) => {
          socket.destroy();
          resolve(101);
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on("error", reject);
        req.end();
      });
    expect(await upgrade()).toBe(101);
    expect(await upgrade(new URL(server.url).origin)).toBe(101);
    expect(await upgrade("http://lab.example")).toBe(101);
    expect(await upgrade("http://evil.example")).toBe(403);
  });

  it("refuses an address after ten wrong admin tokens in a minute, the right one too, others not", async () => {
    const wrong = { authorization: "Bearer guess" };
    const right = { authorization: `Bearer ${TOKEN}` };
    for (let i = 0; i < 10; i++)
      expect((await from("127.0.0.3", "/api/admin/check", wrong)).status).toBe(401);
    const locked = await from("127.0.0.3", "/api/admin/check", right);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers["retry-after"])).toBeGreaterThan(0);
    // Requests without a token are not guesses, and other addresses are not affected.
    expect((await from("127.0.0.3", "/api/runs")).status).toBe(200);
    expect((await from("127.0.0.4", "/api/admin/check", right)).status).toBe(200);
  });

  it("bounds the event streams one address holds open", async () => {
    const runs = await (await fetch(`${server.url}/api/runs`)).json();
    const id = (runs as { runs: { id: string }[] }).runs[0]!.id;
    const open = [];
    for (let i = 0; i < 16; i++) {
      const s = await from("127.0.0.5", i % 2 ? "/api/events" : `/api/runs/${id}/events`);
      expect(s.status).toBe(200);
      open.push(s);
    }
    expect((await from("127.0.0.5", "/api/events")).status).toBe(429);
    expect((await from("127.0.0.6", "/api/events")).status).toBe(200);
    open.pop()!.close();
    // The server notices the closed stream and frees its place.
    let status = 429;
    for (let i = 0; i < 50 && status === 429; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const s = await from("127.0.0.5", "/api/events");
      status = s.status;
      s.close();
    }
    expect(status).toBe(200);
    for (const s of open) s.close();
  });
});
