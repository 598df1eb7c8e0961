// Reduction among peers (Run config `reduceGroup`): the coordinator's side. Sessions that joined
// with peers declare their updates (the SHA-256 of each piece, shared/src/reduce/pieces.ts)
// instead of sending them; declarations of one version gather into groups of `size`; each group
// gets a plan, its members reduce the parts among themselves over WebRTC, and two owners send each
// part (one the bytes, one the hash). The coordinator takes a group's reduced update only when
// every part's two owners agree bit for bit; anything else (a disagreement, a member's bytes that
// did not match its declaration, bytes that never came, the deadline) falls the group back: every
// member sends its update whole over the WebSocket, checked against what it declared.
//
// Who is wrong is settled as far as the evidence allows. An owner that got bytes not matching a
// member's declaration accuses it; two different accusers strike it (one hostile owner cannot
// frame an honest member, who is never struck by one). A part whose owners disagree is settled
// from the members' whole updates, once all of them are in: the owner whose result differs from
// the true reduction is struck.
import {
  type Aggregator,
  partHash,
  partOwners,
  partRange,
  pieceHashes,
  type ReduceMember,
  reducePart,
} from "@pangea/shared";
import type { Lease } from "./scheduler.ts";

/** One declared update, waiting for its group or being reduced in one. */
export interface Declaration {
  sessionId: string;
  /** The declaration's message id: its acknowledgement, or its fallback, refers to it. */
  messageId: string;
  lease: Lease;
  samples: number;
  loss: number;
  pieceHashes: Uint8Array;
}

export interface Group {
  id: number;
  version: number;
  members: Declaration[];
  deadline: number;
  /** Per part: the reducing owner's values and their hash, and the checking owner's hash. */
  parts: Array<{ values?: Float32Array; reduced?: string; checked?: string }>;
}

export type GroupOutcome =
  | { kind: "reduced"; group: Group; update: Float32Array }
  | { kind: "fallback"; group: Group; why: string };

/** How long a declaration waits for others to fill its group. */
export const GROUP_WAIT_MS = 1_000;
/** How long a group has to send its parts once planned. */
export const REDUCE_MS = 12_000;

export class ReduceGroups {
  private nextGroup = 1;
  private open: Declaration[] = [];
  private openedAt = 0;
  readonly reducing = new Map<number, Group>();
  /** Leases declared and not yet reduced or fallen back. */
  private readonly declared = new Set<number>();
  /** Fallen-back members' declarations, by lease id: their whole update must match them. */
  private readonly expected = new Map<number, { pieceHashes: Uint8Array; group: number }>();
  /** Groups whose parts disagreed: the members' whole updates settle which owner was wrong. */
  private readonly disputes = new Map<
    number,
    { group: Group; claims: Group["parts"]; updates: Map<number, Float32Array> }
  >();
  /** Who accused each session of sending bytes that did not match its declaration. */
  private readonly accusers = new Map<string, Set<string>>();
  /** Reducing groups a member left: they fall back at the next tick, not at their deadline. */
  private readonly abandoned = new Set<number>();

  constructor(
    readonly size: number,
    /** Floats in an update. */
    readonly n: number,
    readonly aggregator: Aggregator,
    readonly trim: number,
  ) {}

  /** Whether a lease has a declaration that is gathering or reducing. */
  has(leaseId: number): boolean {
    return this.declared.has(leaseId);
  }

  /** Declarations gathering or reducing. */
  get declaredCount(): number {
    return this.declared.size;
  }

  /** A group is gathering or reducing: the version waits for it. */
  get busy(): boolean {
    return this.open.length > 0 || this.reducing.size > 0;
  }

  /**
   * Takes a declaration for the run's open version; returns the groups it completes:
   * a full group, or the open one when nothing more can arrive for this version (`last`).
   */
  declare(
    d: Declaration,
    now: number,
    last: boolean,
    /** False for a session whose peer transfers keep failing (parameter-sources.ts). */
    reachable = true,
  ): Group[] {
    if (!reachable) {
      // Alone in a group of one: the caller falls it back at once.
      const alone = this.open;
      this.open = [d];
      const group = this.seal(now);
      this.open = alone;
      return [group];
    }
    if (this.open.length === 0) this.openedAt = now;
    this.open.push(d);
    this.declared.add(d.lease.id);
    if (this.open.length >= this.size || last) return [this.seal(now)];
    return [];
  }

  /**
   * The version closed: declarations still gathering for it are stale (their members are told
   * so; a group already reducing is refused when it settles).
   */
  takeOpen(): Declaration[] {
    const open = this.open;
    this.open = [];
    for (const d of open) this.declared.delete(d.lease.id);
    return open;
  }

  /** The open group, sealed once it has waited GROUP_WAIT_MS (or the version closes: `force`). */
  due(now: number, force = false): Group[] {
    if (this.open.length === 0 || (!force && now - this.openedAt < GROUP_WAIT_MS)) return [];
    return [this.seal(now)];
  }

  private seal(now: number): Group {
    const members = this.open.sort((a, b) => a.lease.id - b.lease.id);
    this.open = [];
    const group: Group = {
      id: this.nextGroup++,
      version: members[0]!.lease.baseVersion,
      members,
      deadline: now + REDUCE_MS,
      parts: members.map(() => ({})),
    };
    // A group of one has no one to reduce with: the caller falls it back at once.
    if (members.length > 1) this.reducing.set(group.id, group);
    return group;
  }

  /** The plan each member of `group` gets. */
  plan(group: Group): Extract<import("@pangea/shared").Payload, { type: "reducePlan" }> {
    const members: ReduceMember[] = group.members.map((m) => ({
      session: m.sessionId,
      leaseId: m.lease.id,
      weight: m.samples,
      pieceHashes: m.pieceHashes,
    }));
    return {
      type: "reducePlan",
      group: group.id,
      version: group.version,
      members,
      deadline: group.deadline,
      aggregator: this.aggregator,
      trim: this.trim,
    };
  }

  /**
   * An owner's part. Returns why it is refused (not a member, not its part, the wrong size), or
   * the group's outcome once it has one, or undefined while parts are still due.
   */
  part(
    sessionId: string,
    p: Extract<import("@pangea/shared").Payload, { type: "reducedPart" }>,
  ): { refused: string } | { accused: string[]; outcome?: GroupOutcome } {
    const group = this.reducing.get(p.group);
    if (!group) return { refused: `group ${p.group} is not reducing` };
    const g = group.members.length;
    const i = group.members.findIndex((m) => m.sessionId === sessionId);
    if (i < 0) return { refused: `this session is not in group ${p.group}` };
    if (p.part >= g) return { refused: `group ${p.group} has ${g} parts` };
    const { reducer, checker } = partOwners(g, p.part);
    if (i !== reducer && i !== checker)
      return { refused: `part ${p.part} of group ${p.group} is not this session's` };
    const slot = group.parts[p.part]!;
    if (i === reducer ? slot.reduced !== undefined : slot.checked !== undefined)
      return { refused: `part ${p.part} of group ${p.group} is already in` };
    const members = new Set(group.members.map((m) => m.sessionId));
    const accused = [...new Set(p.badBytes)].filter((s) => members.has(s) && s !== sessionId);
    const struck = accused.filter((s) => this.accuse(s, sessionId));
    if (accused.length > 0 || p.missing.length > 0)
      return {
        accused: struck,
        outcome: this.fallBack(
          group,
          accused.length > 0
            ? `${sessionId} got bytes from ${accused.join(", ")} that did not match their declarations`
            : `${sessionId} did not get the bytes of ${p.missing.slice(0, 3).join(", ")} in time`,
        ),
      };
    if (i === reducer) {
      const { start, end } = partRange(this.n, g, p.part);
      if (p.data.byteLength !== 4 * (end - start))
        return {
          refused: `part ${p.part} of group ${p.group} holds ${end - start} floats, not ${p.data.byteLength / 4}`,
        };
      // A copy: the frame's bytes may sit at any offset, and the part outlives the frame.
      const values = new Float32Array(end - start);
      new Uint8Array(values.buffer).set(p.data);
      slot.values = values;
      slot.reduced = partHash(values);
    } else {
      if (!/^[0-9a-f]{64}$/.test(p.sha256))
        return { refused: "a checked part's sha256 must be 64 lowercase hex digits" };
      slot.checked = p.sha256;
    }
    if (group.parts.some((s) => s.reduced === undefined || s.checked === undefined))
      return { accused: [] };
    if (group.parts.some((s) => s.reduced !== s.checked)) {
      const bad = group.parts.flatMap((s, k) => (s.reduced !== s.checked ? [k] : []));
      this.disputes.set(group.id, {
        group,
        claims: group.parts.map((s) => ({ reduced: s.reduced, checked: s.checked })),
        updates: new Map(),
      });
      return {
        accused: [],
        outcome: this.fallBack(group, `the owners of part ${bad.join(", ")} disagree`),
      };
    }
    this.reducing.delete(group.id);
    for (const m of group.members) this.declared.delete(m.lease.id);
    const update = new Float32Array(this.n);
    for (const [k, s] of group.parts.entries())
      update.set(s.values!, partRange(this.n, g, k).start);
    return { accused: [], outcome: { kind: "reduced", group, update } };
  }

  /** Groups past their deadline, fallen back (a member left, a peer stalled). */
  expire(now: number): GroupOutcome[] {
    const out: GroupOutcome[] = [];
    for (const group of [...this.reducing.values()])
      if (this.abandoned.has(group.id))
        out.push(this.fallBack(group, `a member of group ${group.id} left while it reduced`));
      else if (group.deadline <= now)
        out.push(this.fallBack(group, `group ${group.id}'s parts did not all come in time`));
    return out;
  }

  /** A group that will not be reduced: its members send their updates whole. */
  fallBack(group: Group, why: string): Extract<GroupOutcome, { kind: "fallback" }> {
    this.reducing.delete(group.id);
    this.abandoned.delete(group.id);
    for (const m of group.members) {
      this.declared.delete(m.lease.id);
      this.expected.set(m.lease.id, { pieceHashes: m.pieceHashes, group: group.id });
    }
    return { kind: "fallback", group, why };
  }

  /**
   * A fallen-back member's whole update (its tensors in the model's order). Returns false when
   * it is not what the member declared; otherwise the owners a settled dispute proved wrong.
   */
  arrived(
    leaseId: number,
    tensors: readonly Float32Array[],
  ): { matches: boolean; wrong: string[] } {
    const expected = this.expected.get(leaseId);
    if (!expected) return { matches: true, wrong: [] };
    this.expected.delete(leaseId);
    const flat = new Float32Array(this.n);
    let at = 0;
    for (const t of tensors) {
      flat.set(t, at);
      at += t.length;
    }
    const hashes = pieceHashes(flat);
    if (!equalBytes(hashes, expected.pieceHashes)) return { matches: false, wrong: [] };
    const dispute = this.disputes.get(expected.group);
    if (!dispute) return { matches: true, wrong: [] };
    dispute.updates.set(leaseId, flat);
    if (dispute.updates.size < dispute.group.members.length) return { matches: true, wrong: [] };
    this.disputes.delete(expected.group);
    return { matches: true, wrong: this.settle(dispute.group, dispute.claims, dispute.updates) };
  }

  /** The owners whose hash of a disputed part is not the part reduced from the whole updates. */
  private settle(
    group: Group,
    claims: Group["parts"],
    updates: Map<number, Float32Array>,
  ): string[] {
    const g = group.members.length;
    const wrong = new Set<string>();
    for (const [k, claim] of claims.entries()) {
      if (claim.reduced === claim.checked) continue;
      const { start, end } = partRange(this.n, g, k);
      const values = group.members.map((m) => updates.get(m.lease.id)!.subarray(start, end));
      const truth = partHash(
        reducePart(
          values,
          group.members.map((m) => m.samples),
          this.aggregator,
          this.trim,
        ),
      );
      const { reducer, checker } = partOwners(g, k);
      if (claim.reduced !== truth) wrong.add(group.members[reducer]!.sessionId);
      if (claim.checked !== truth) wrong.add(group.members[checker]!.sessionId);
    }
    return [...wrong];
  }

  /** Versions move on: disputes and expectations of versions before `version` lapse. */
  forget(version: number): void {
    for (const [id, d] of this.disputes) if (d.group.version < version) this.disputes.delete(id);
  }

  /** A lease ended without its update (its session left, it expired, it was refused). */
  drop(leaseId: number): void {
    this.expected.delete(leaseId);
    if (!this.declared.has(leaseId)) return;
    this.declared.delete(leaseId);
    this.open = this.open.filter((d) => d.lease.id !== leaseId);
    for (const g of this.reducing.values())
      if (g.members.some((m) => m.lease.id === leaseId)) this.abandoned.add(g.id);
  }

  /** True when `accuser`'s accusation completes a strike against `member` (a second accuser). */
  private accuse(member: string, accuser: string): boolean {
    const set = this.accusers.get(member) ?? new Set<string>();
    set.add(accuser);
    if (set.size < 2) {
      this.accusers.set(member, set);
      return false;
    }
    this.accusers.delete(member);
    return true;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
