// Which batch goes to whom, and until when. Each epoch visits every batch once in a seeded
// order; a batch is leased to one session with a deadline; an expired or handed-back lease puts
// its batch back at the front of the queue; a batch counts once per epoch, whoever finishes it.
//
// A batch moves: free → leased → pending (its update was accepted into an open version) → done
// (that version was committed). Only `done` is persisted with each version: after a restart the
// pending and leased batches of the lost moments are simply free again, so nothing is counted
// twice and nothing is lost. When the current epoch has nothing left to hand out, the next
// epoch's batches go out, so that a version is never starved at an epoch's end.
import { seededRandom } from "@pangea/shared";

export interface Lease {
  id: number;
  sessionId: string;
  epoch: number;
  /** The batch's index in the dataset's batch list (its position in the epoch's order differs). */
  batch: number;
  baseVersion: number;
  issuedAt: number;
  deadline: number;
  /** 1 for the second copy of a batch handed to two sessions for comparison. */
  replica: 0 | 1;
}

export interface EpochProgress {
  epoch: number;
  /** Batches committed this epoch. */
  done: number[];
  /** Batches of the next epoch already committed (leased early, while this one finished). */
  ahead?: number[];
}

/** One epoch's bookkeeping. */
class EpochState {
  readonly done = new Set<number>();
  readonly pending = new Set<number>();
  /** Batches to hand out before the order continues (expired, handed back, refused). */
  returned: number[] = [];
  cursor = 0;
  constructor(
    readonly epoch: number,
    readonly order: Int32Array,
    done: readonly number[] = [],
  ) {
    for (const b of done) if (b >= 0 && b < order.length) this.done.add(b);
  }
}

export class Scheduler {
  /** The oldest epoch not yet complete; leases may also come from the one after it. */
  private current: EpochState;
  private next: EpochState;
  private readonly leases = new Map<number, Lease>();
  /** Live leases per "epoch:batch". */
  private readonly byBatch = new Map<string, Lease[]>();
  /** Disputed batches that want one more copy, from a session not yet involved. */
  private readonly wanted = new Map<
    string,
    { epoch: number; batch: number; baseVersion: number; exclude: ReadonlySet<string> }
  >();
  /** Copy leases' exclusions (the sessions whose copies they check), to want again if dropped. */
  private readonly copyExclude = new Map<number, ReadonlySet<string>>();
  private nextLeaseId: number;
  /** Leases that expired and whose batch went back to the queue, since the start. */
  reissues = 0;

  constructor(
    readonly batchCount: number,
    private readonly seed: number,
    private readonly redundancy: number,
    progress: EpochProgress,
    /** Lease ids start here: use the clock (ms × 1000), so ids never repeat across restarts. */
    firstLeaseId: number,
  ) {
    this.current = this.epochState(progress.epoch, progress.done);
    this.next = this.epochState(progress.epoch + 1, progress.ahead ?? []);
    this.nextLeaseId = firstLeaseId;
  }

  /** A lease id for work outside the epoch (evaluation leases), from the same sequence. */
  newLeaseId(): number {
    return this.nextLeaseId++;
  }

  get epoch(): number {
    return this.current.epoch;
  }

  get(leaseId: number): Lease | undefined {
    return this.leases.get(leaseId);
  }

  /** Committed batches, for the Store. */
  progress(): EpochProgress {
    const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
    return {
      epoch: this.current.epoch,
      done: sorted(this.current.done),
      ahead: sorted(this.next.done),
    };
  }

  /** Batches done in the current epoch. */
  get doneCount(): number {
    return this.current.done.size;
  }

  /** Batches of the current and the next epoch neither done, pending nor leased. */
  get freeCount(): number {
    return [this.current, this.next].reduce((n, e) => n + this.freeIn(e), 0);
  }

  /** How many leases are out now. */
  get liveCount(): number {
    return this.leases.size;
  }

  /** Live leases, for status pages. */
  liveLeases(): Lease[] {
    return [...this.leases.values()];
  }

  /**
   * A lease for `sessionId`, or undefined when every batch of this epoch and the next is leased
   * or pending. The next epoch's batches go out only once this epoch has none left to hand out,
   * so a version never waits at an epoch's end. A batch chosen for redundancy is leased a
   * second time to a different session, before any new batch.
   */
  issue(
    sessionId: string,
    now: number,
    durationMs: number,
    baseVersion: number,
    keeps: (version: number) => boolean = () => false,
  ): Lease | undefined {
    const copy = this.issueCopy(sessionId, now, durationMs, baseVersion, keeps);
    if (copy) return copy;
    for (const e of [this.current, this.next]) {
      const batch = this.nextFree(e);
      if (batch !== undefined)
        return this.lease(sessionId, e.epoch, batch, now, durationMs, baseVersion, 0);
    }
    return undefined;
  }

  /**
   * A lease on a copy of a batch another session computed or is computing, if one is due, else
   * undefined. A disputed batch's third copy first: it decides who computed it wrongly. Then a
   * redundant batch's replica: while its first copy is being computed, or after it came in
   * (accept wants one then), so that the configured share of batches really is computed twice
   * and a freeloader that answers at once is checked at that rate too. Two copies compare only
   * when they started from the same parameters: a copy is leased on its first copy's version,
   * the current one (`baseVersion`) or an older one the run still keeps (`keeps`), whose
   * parameters then go with the lease. A copy never votes, so a session that already works on
   * (or has voted in) the open version may take one.
   */
  issueCopy(
    sessionId: string,
    now: number,
    durationMs: number,
    baseVersion: number,
    keeps: (version: number) => boolean = () => false,
  ): Lease | undefined {
    const from = (v: number) => v === baseVersion || keeps(v);
    for (const [key, w] of this.wanted) {
      if (!from(w.baseVersion) || w.exclude.has(sessionId)) continue;
      this.wanted.delete(key);
      const copy = this.lease(sessionId, w.epoch, w.batch, now, durationMs, w.baseVersion, 1);
      this.copyExclude.set(copy.id, w.exclude);
      return copy;
    }
    if (this.redundancy <= 0) return undefined;
    for (const live of this.byBatch.values()) {
      const first = live[0]!;
      if (
        live.length === 1 &&
        first.replica === 0 &&
        first.sessionId !== sessionId &&
        from(first.baseVersion) &&
        this.isRedundant(first.epoch, first.batch)
      ) {
        const copy = this.lease(
          sessionId,
          first.epoch,
          first.batch,
          now,
          durationMs,
          first.baseVersion,
          1,
        );
        this.copyExclude.set(copy.id, new Set([first.sessionId]));
        return copy;
      }
    }
    return undefined;
  }

  /**
   * Asks for one more copy of a batch whose two copies disagreed, computed from `baseVersion`
   * by a session other than `exclude`; wanted while that version's parameters are kept
   * (forgetCopies).
   */
  wantCopy(epoch: number, batch: number, baseVersion: number, exclude: readonly string[]): void {
    this.wanted.set(`${epoch}:${batch}`, { epoch, batch, baseVersion, exclude: new Set(exclude) });
  }

  /** Copies wanted from versions whose parameters are no longer kept cannot be computed: forgotten. */
  forgetCopies(kept: (version: number) => boolean): void {
    for (const [key, w] of this.wanted) if (!kept(w.baseVersion)) this.wanted.delete(key);
  }

  /**
   * Whether a copy may still start from `version`: one is wanted from it, or leased on it, or a
   * redundant batch's first copy is leased on it (its replica is due).
   */
  needs(version: number): boolean {
    for (const w of this.wanted.values()) if (w.baseVersion === version) return true;
    for (const l of this.leases.values())
      if (
        l.baseVersion === version &&
        (l.replica === 1 || (this.redundancy > 0 && this.isRedundant(l.epoch, l.batch)))
      )
        return true;
    return false;
  }

  /** Removes leases past their deadline; their batches go back to the front of the queue. */
  expire(now: number): Lease[] {
    const expired = [...this.leases.values()].filter((l) => l.deadline <= now);
    for (const l of expired) this.drop(l);
    this.reissues += expired.length;
    return expired;
  }

  /** A session left: its leases end now and their batches go back at once. */
  release(sessionId: string): Lease[] {
    const mine = [...this.leases.values()].filter((l) => l.sessionId === sessionId);
    for (const l of mine) this.drop(l);
    return mine;
  }

  /** Ends one lease without its batch counting (its update was refused). */
  revoke(leaseId: number): void {
    const l = this.leases.get(leaseId);
    if (l) this.drop(l);
  }

  /**
   * The lease's update was accepted into the open version: its batch is pending. Returns
   * "counted" for the first copy of a batch, "duplicate" for a replica whose batch is already
   * pending or done, or one of an epoch already finished (compare it, do not count it).
   */
  accept(leaseId: number): "counted" | "duplicate" {
    const l = this.leases.get(leaseId);
    if (!l) throw new Error(`no live lease ${leaseId}`);
    this.forget(l);
    const e = this.stateOf(l.epoch);
    if (!e || e.pending.has(l.batch) || e.done.has(l.batch)) return "duplicate";
    e.pending.add(l.batch);
    // A redundant batch whose first copy came in before anyone took its replica: wanted still,
    // from the same version, by someone else.
    const key = `${l.epoch}:${l.batch}`;
    if (
      l.replica === 0 &&
      this.redundancy > 0 &&
      !this.byBatch.has(key) &&
      this.isRedundant(l.epoch, l.batch)
    )
      this.wantCopy(l.epoch, l.batch, l.baseVersion, [l.sessionId]);
    return "counted";
  }

  /** Whether the lease's batch already has a copy in (pending or done): this one is compared. */
  hasCopyIn(l: Lease): boolean {
    const e = this.stateOf(l.epoch);
    return !e || e.pending.has(l.batch) || e.done.has(l.batch);
  }

  /** Whether the batch's first copy was committed (in the current or the next epoch). */
  committed(epoch: number, batch: number): boolean {
    return this.stateOf(epoch)?.done.has(batch) === true;
  }

  /** Pending batches that will not be committed (their version was abandoned) are free again. */
  unpend(batches: ReadonlyArray<{ epoch: number; batch: number }>): void {
    for (const { epoch, batch } of batches) {
      const e = this.stateOf(epoch);
      if (e?.pending.delete(batch)) e.returned.push(batch);
    }
  }

  /**
   * The version holding these pending batches is committed: they are done. When the current
   * epoch is complete the next becomes current; returns true then.
   */
  commit(batches: ReadonlyArray<{ epoch: number; batch: number }>): boolean {
    for (const { epoch, batch } of batches) {
      const e = this.stateOf(epoch);
      if (e?.pending.delete(batch)) e.done.add(batch);
    }
    if (this.current.done.size < this.batchCount) return false;
    this.current = this.next;
    this.next = this.epochState(this.current.epoch + 1);
    return true;
  }

  private epochState(epoch: number, done: readonly number[] = []): EpochState {
    return new EpochState(epoch, epochOrder(this.batchCount, this.seed, epoch), done);
  }

  private stateOf(epoch: number): EpochState | undefined {
    return epoch === this.current.epoch
      ? this.current
      : epoch === this.next.epoch
        ? this.next
        : undefined;
  }

  private taken(e: EpochState, b: number): boolean {
    return e.done.has(b) || e.pending.has(b) || this.byBatch.has(`${e.epoch}:${b}`);
  }

  private freeIn(e: EpochState): number {
    let leased = 0;
    for (const live of this.byBatch.values()) if (live[0]!.epoch === e.epoch) leased++;
    return this.batchCount - e.done.size - e.pending.size - leased;
  }

  private nextFree(e: EpochState): number | undefined {
    while (e.returned.length > 0) {
      const b = e.returned.shift()!;
      if (!this.taken(e, b)) return b;
    }
    while (e.cursor < e.order.length) {
      const b = e.order[e.cursor++]!;
      if (!this.taken(e, b)) return b;
    }
    return undefined;
  }

  private lease(
    sessionId: string,
    epoch: number,
    batch: number,
    now: number,
    durationMs: number,
    baseVersion: number,
    replica: 0 | 1,
  ): Lease {
    const l: Lease = {
      id: this.nextLeaseId++,
      sessionId,
      epoch,
      batch,
      baseVersion,
      issuedAt: now,
      deadline: now + durationMs,
      replica,
    };
    this.leases.set(l.id, l);
    const key = `${epoch}:${batch}`;
    const live = this.byBatch.get(key) ?? [];
    live.push(l);
    this.byBatch.set(key, live);
    return l;
  }

  private forget(l: Lease): void {
    this.leases.delete(l.id);
    this.copyExclude.delete(l.id);
    const key = `${l.epoch}:${l.batch}`;
    const live = (this.byBatch.get(key) ?? []).filter((x) => x.id !== l.id);
    if (live.length > 0) this.byBatch.set(key, live);
    else this.byBatch.delete(key);
  }

  private drop(l: Lease): void {
    const exclude = this.copyExclude.get(l.id);
    this.forget(l);
    const e = this.stateOf(l.epoch);
    if (e && !this.taken(e, l.batch)) e.returned.push(l.batch);
    // A copy that will not come (expired, its session gone, refused) is wanted from someone else,
    // while the copy it checks is in.
    else if (exclude && e && (e.pending.has(l.batch) || e.done.has(l.batch)))
      this.wantCopy(l.epoch, l.batch, l.baseVersion, [...exclude]);
  }

  /** Whether a batch goes to two sessions: a seeded draw, the same on restart. */
  private isRedundant(epoch: number, b: number): boolean {
    const draw = seededRandom(
      (this.seed ^ Math.imul(epoch, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 0,
    );
    return draw() < this.redundancy;
  }
}

/** The epoch's seeded order of batch indices (Fisher–Yates). */
export function epochOrder(batchCount: number, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: batchCount }, (_, i) => i);
  const next = seededRandom((seed * 0x2545f491 + epoch * 0x9e3779b9) >>> 0);
  for (let i = batchCount - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Sample indices of batch b: the dataset shuffled once per run, cut into batches of `size`. */
export function batchSamples(count: number, size: number, seed: number, b: number): Int32Array {
  const start = b * size;
  const end = Math.min(count, start + size);
  const perm = samplePermutation(count, seed);
  return perm.subarray(start, end);
}

const permutations = new Map<string, Int32Array>();

function samplePermutation(count: number, seed: number): Int32Array {
  const key = `${count}:${seed}`;
  let perm = permutations.get(key);
  if (!perm) {
    perm = epochOrder(count, seed ^ 0x5bd1e995, 0);
    permutations.set(key, perm);
  }
  return perm;
}
