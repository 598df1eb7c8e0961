// What a stranger may ask of the coordinator before it has done any work: new sessions per
// address, open sessions per address, and signals between introduced sessions. A join costs the
// coordinator a session, a Store row and a welcome; a signal costs it a relayed frame. Both are
// bounded here, per address or per session, so that one socket cannot make the coordinator do
// more than it is sent.

/** Per-address limits on joining. Defaults suit a lab or a household behind one NAT. */
export interface AdmissionLimits {
  /** New sessions one address may start per minute (resuming with a token is not new). */
  newSessionsPerMinute: number;
  /** Sessions one address may have connected at once. */
  sessionsPerAddress: number;
}

export const DEFAULT_ADMISSION: AdmissionLimits = {
  newSessionsPerMinute: 60,
  sessionsPerAddress: 32,
};

/** The largest signal payload relayed (an SDP offer with its candidates is a few KB). */
export const MAX_SIGNAL_BYTES = 16 << 10;
/** Signals one session may send: a burst of this many, refilled at SIGNALS_PER_SECOND. */
export const SIGNAL_BURST = 40;
export const SIGNALS_PER_SECOND = 10;

/**
 * A token bucket: `capacity` at most, refilled at `perMs` tokens per millisecond. Full buckets
 * hold no information, so a map of them can drop those (see AddressBook.prune).
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly capacity: number,
    private readonly perMs: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.at = now;
  }

  /** Takes one token if there is one; else says how long until there will be. */
  take(now: number): { ok: true } | { ok: false; retryAfterMs: number } {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil((1 - this.tokens) / this.perMs) };
  }

  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.capacity;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + Math.max(0, now - this.at) * this.perMs);
    this.at = now;
  }
}

/** Join accounting per address: a bucket of new sessions and the count of open ones. */
export class AddressBook {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly open = new Map<string, number>();

  constructor(readonly limits: AdmissionLimits) {}

  /** Why this address may not start a new session now (and when to ask again), or nothing:
   * then the start is counted. */
  admitNew(address: string, now: number): { message: string; retryAfterMs: number } | undefined {
    if (!this.mayOpen(address))
      return {
        message: `this address has ${this.limits.sessionsPerAddress} sessions open, the most it may`,
        retryAfterMs: 10_000,
      };
    let bucket = this.buckets.get(address);
    if (!bucket) {
      const n = this.limits.newSessionsPerMinute;
      bucket = new TokenBucket(n, n / 60_000, now);
      this.buckets.set(address, bucket);
    }
    const taken = bucket.take(now);
    if (taken.ok) return undefined;
    return {
      message: `this address started ${this.limits.newSessionsPerMinute} sessions in the last minute, the most it may`,
      retryAfterMs: taken.retryAfterMs,
    };
  }

  /** Whether one more session of this address may be connected (a resumed one included). */
  mayOpen(address: string): boolean {
    return this.openAt(address) < this.limits.sessionsPerAddress;
  }

  opened(address: string): void {
    this.open.set(address, this.openAt(address) + 1);
  }

  closed(address: string): void {
    const n = this.openAt(address) - 1;
    if (n > 0) this.open.set(address, n);
    else this.open.delete(address);
  }

  openAt(address: string): number {
    return this.open.get(address) ?? 0;
  }

  /** Forgets addresses with full buckets: memory stays bounded by recent joiners. */
  prune(now: number): void {
    for (const [address, bucket] of this.buckets)
      if (bucket.full(now)) this.buckets.delete(address);
  }

  get tracked(): number {
    return this.buckets.size;
  }
}

/**
 * The limits a deployment sets in its environment (Node's process.env, the edge's Worker vars):
 * PANGEA_NEW_SESSIONS_PER_MINUTE and PANGEA_SESSIONS_PER_ADDRESS, positive integers. A value that
 * is not one is an operator's mistake, said at start rather than ignored.
 */
export function admissionFromEnv(env: Record<string, unknown>): Partial<AdmissionLimits> {
  const limits: Partial<AdmissionLimits> = {};
  const read = (name: string, key: keyof AdmissionLimits) => {
    const raw = env[name];
    if (raw === undefined || raw === "") return;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`${name} must be a positive integer, not ${String(raw)}`);
    limits[key] = n;
  };
  read("PANGEA_NEW_SESSIONS_PER_MINUTE", "newSessionsPerMinute");
  read("PANGEA_SESSIONS_PER_ADDRESS", "sessionsPerAddress");
  return limits;
}
