// The HTTP surface's guards, the same on Node and on the edge: security headers on every
// response, CORS closed unless origins are configured, a limit on wrong admin tokens per address,
// and a bound on open server-sent event streams. Each is a Hono middleware or a small counter
// that an adapter mounts; the address of a request is the adapter's to say (Node: the socket's;
// the edge: cf-connecting-ip).
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { sha256Hex } from "@pangea/shared";

const utf8 = new TextEncoder();

/**
 * Compares in constant time: both sides are hashed first (SHA-256), so neither the position of
 * the first difference nor the token's length shows in the timing. An empty token never matches.
 */
export function sameToken(a: string, b: string): boolean {
  if (a.length === 0 || b.length === 0) return false;
  const x = sha256Hex(utf8.encode(a));
  const y = sha256Hex(utf8.encode(b));
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x.charCodeAt(i) ^ y.charCodeAt(i);
  return diff === 0;
}

/** Whether an Authorization header carries the admin token (never, when none is set). */
export function isAdmin(header: string | undefined, adminToken: string): boolean {
  const token = header?.startsWith("Bearer ") ? header.slice(7) : "";
  return sameToken(token, adminToken);
}

/** The refusal every admin endpoint answers without the token. */
export const UNAUTHORIZED = {
  error: "unauthorized",
  message: "this needs the admin token: Authorization: Bearer <token>",
};

/**
 * What the built UI needs and no more: its own scripts, styles, workers and connections (the
 * WebSocket is same-origin), images from itself or data: (the favicon) and blob: (downloads).
 * client-web/public/_headers carries the same policy for the edge's static assets.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

/** Adds SECURITY_HEADERS to every response that does not set its own. */
export function securityHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    // A WebSocket upgrade (the edge's 101) cannot be re-made; it carries no page anyway.
    if (c.res.status === 101) return;
    // A response fetched from a Durable Object has immutable headers: copy it first.
    c.res = new Response(c.res.body, c.res);
    for (const [name, value] of Object.entries(SECURITY_HEADERS))
      if (!c.res.headers.has(name)) c.res.headers.set(name, value);
  };
}

/**
 * CORS for the API: closed (no Access-Control-* headers, so browsers refuse cross-origin reads)
 * unless `origins` lists who may call it (PANGEA_CORS_ORIGINS, comma-separated; "*" for anyone).
 */
export function corsFor(origins: readonly string[]): MiddlewareHandler {
  if (origins.length === 0) return async (_c, next) => next();
  return cors({
    origin: origins.includes("*") ? "*" : [...origins],
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: ["authorization", "content-type"],
    maxAge: 600,
  });
}

/**
 * May a WebSocket upgrade from a page at `origin` join? A browser always names its page's
 * origin; a page elsewhere would otherwise turn its visitors' tabs into contributors (or
 * saboteurs) of this coordinator unasked. Same origin, the configured CORS origins, and clients
 * that name none (headless workers) may.
 */
export function socketOriginAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: readonly string[],
): boolean {
  if (!origin) return true;
  if (allowed.includes("*") || allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** PANGEA_CORS_ORIGINS as a list ("" or absent: none). */
export function parseOrigins(text: string | undefined): string[] {
  return (text ?? "")
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o.length > 0);
}

/**
 * Counts wrong admin tokens per address; an address with `maxFailures` in `windowMs` is refused
 * (429) whatever token it sends, until its window ends. A brute force of the token gets ten
 * guesses a minute per address. At most `maxAddresses` are remembered (the oldest forgotten).
 */
export class AdminFailureLimit {
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(
    readonly options: { maxFailures: number; windowMs: number; maxAddresses: number } = {
      maxFailures: 10,
      windowMs: 60_000,
      maxAddresses: 10_000,
    },
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Milliseconds until the address may try again; 0 when it may now. */
  blockedFor(address: string): number {
    const f = this.failures.get(address);
    if (!f) return 0;
    const left = f.since + this.options.windowMs - this.now();
    if (left <= 0) {
      this.failures.delete(address);
      return 0;
    }
    return f.count >= this.options.maxFailures ? left : 0;
  }

  fail(address: string): void {
    const t = this.now();
    const f = this.failures.get(address);
    if (f && t - f.since < this.options.windowMs) {
      f.count++;
      return;
    }
    this.failures.delete(address);
    if (this.failures.size >= this.options.maxAddresses) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    this.failures.set(address, { count: 1, since: t });
  }

  /**
   * One request with an `Authorization` header from `address`: the milliseconds it must wait when
   * the address is over its limit (refused, right token or not), else 0, a wrong token counted.
   */
  attempt(address: string, ok: boolean): number {
    const wait = this.blockedFor(address);
    if (wait === 0 && !ok) this.fail(address);
    return wait;
  }
}

/**
 * The wrong-token limit as middleware: a request with a wrong `Authorization: Bearer` counts a
 * failure; an address over its limit is refused before any route sees it. `attempt` is an
 * AdminFailureLimit's in this process (Node), or a call to the object that holds the count for
 * every isolate (the edge's LimitObject).
 */
export function adminFailureLimit(
  attempt: (address: string, ok: boolean) => number | Promise<number>,
  adminToken: () => string,
  addressOf: (c: Context) => string,
): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header("authorization");
    if (header === undefined) return next();
    const wait = await attempt(addressOf(c), isAdmin(header, adminToken()));
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      return c.json(
        {
          error: "rateLimited",
          message: `too many wrong admin tokens from this address; try again in ${seconds} s`,
        },
        429,
        { "retry-after": String(seconds) },
      );
    }
    return next();
  };
}

/**
 * Open server-sent event streams: at most `total`, and `perAddress` from one address, so that
 * watchers cannot hold every socket and timer of the process.
 */
export class StreamLimit {
  private open = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(
    readonly total = 1024,
    readonly perAddress = 16,
  ) {}

  /** A release function when a stream may open, else undefined. */
  acquire(address: string): (() => void) | undefined {
    const mine = this.byAddress.get(address) ?? 0;
    if (this.open >= this.total || mine >= this.perAddress) return undefined;
    this.open++;
    this.byAddress.set(address, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      const left = (this.byAddress.get(address) ?? 1) - 1;
      if (left > 0) this.byAddress.set(address, left);
      else this.byAddress.delete(address);
    };
  }

  get size(): number {
    return this.open;
  }
}

/** The edge's client address (Cloudflare sets it; locally it may be absent). */
export function edgeAddress(c: Context): string {
  return c.req.header("cf-connecting-ip") ?? "local";
}
