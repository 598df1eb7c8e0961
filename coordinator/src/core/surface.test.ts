import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import {
  AdminFailureLimit,
  adminFailureLimit,
  isAdmin,
  parseOrigins,
  SECURITY_HEADERS,
  StreamLimit,
  sameToken,
  securityHeaders,
} from "./surface.ts";

describe("the HTTP surface's guards", () => {
  it("compares tokens by their hashes: equal ones match, any other never, empty never", () => {
    expect(sameToken("s3cret", "s3cret")).toBe(true);
    expect(sameToken("s3cret", "s3creT")).toBe(false);
    expect(sameToken("s3cret", "s3cret-longer")).toBe(false);
    expect(sameToken("", "")).toBe(false);
    expect(isAdmin("Bearer s3cret", "s3cret")).toBe(true);
    expect(isAdmin("s3cret", "s3cret")).toBe(false);
    expect(isAdmin("Bearer ", "")).toBe(false);
  });

  it("locks an address out for the rest of its window after too many wrong tokens", async () => {
    let t = 0;
    const limit = new AdminFailureLimit(
      { maxFailures: 3, windowMs: 1000, maxAddresses: 2 },
      () => t,
    );
    const app = new Hono();
    app.use(
      "*",
      adminFailureLimit(
        (address, ok) => limit.attempt(address, ok),
        () => "right",
        (c) => c.req.header("x-address") ?? "",
      ),
    );
    app.get("/", (c) => c.text(isAdmin(c.req.header("authorization"), "right") ? "admin" : "no"));
    const ask = (address: string, token?: string) =>
      app.request("/", {
        headers: { "x-address": address, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      });
    for (let i = 0; i < 3; i++) expect(await (await ask("a", "wrong")).text()).toBe("no");
    expect((await ask("a", "right")).status).toBe(429);
    expect((await ask("a")).status).toBe(200); // no token, no guess
    expect(await (await ask("b", "right")).text()).toBe("admin");
    t = 1001;
    expect(await (await ask("a", "right")).text()).toBe("admin");
    // It remembers at most two addresses: a third forgets the oldest.
    for (const address of ["x", "y", "z"]) await ask(address, "wrong");
    expect(limit.blockedFor("x")).toBe(0);
  });

  it("bounds open streams in all and per address, and frees a place once", () => {
    const streams = new StreamLimit(3, 2);
    const a1 = streams.acquire("a")!;
    const a2 = streams.acquire("a")!;
    expect(streams.acquire("a")).toBeUndefined();
    const b1 = streams.acquire("b")!;
    expect(streams.acquire("c")).toBeUndefined();
    a1();
    a1();
    expect(streams.size).toBe(2);
    expect(streams.acquire("a")).toBeDefined();
    a2();
    b1();
  });

  it("adds the security headers to every response, and reads the CORS origins", async () => {
    const app = new Hono();
    app.use("*", securityHeaders());
    app.get("/", (c) => c.text("page"));
    const res = await app.request("/");
    for (const [name, value] of Object.entries(SECURITY_HEADERS))
      expect(res.headers.get(name)).toBe(value);
    expect(parseOrigins(" https://a.example, ,https://b.example ")).toEqual([
      "https://a.example",
      "https://b.example",
    ]);
    expect(parseOrigins(undefined)).toEqual([]);
  });
});
