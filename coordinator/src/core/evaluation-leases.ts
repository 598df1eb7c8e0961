// Evaluation leases: a version's evaluation measured by contributors rather than on the
// coordinator's CPU. The evaluation's parts (a few held-out windows or 250 test images each, and
// the text sample) are each leased to two sessions, which measure them with the CPU reference
// (measureHeldOut, the same code the coordinator runs) on the version's parameters. A part's
// result is kept only when two sessions' reports agree; a report that disagrees with the kept
// result earns its session a strike, and a part whose first two reports disagree goes to a
// third session (and a fourth) to settle it. An evaluation that cannot finish (no agreement
// after MAX_REPORTS, or past its deadline) goes back to the coordinator's own evaluator.
import type { HeldOutMeasure } from "@pangea/shaders/reference";
import type { EvaluationReport, HeldOut } from "@pangea/shared";
import { combineParts, type EvaluationJob, type EvaluationResult } from "./evaluation.ts";

/** Text windows per evaluation lease (image parts are 250 images each). */
export const WINDOWS_PER_LEASE = 8;
/** Reports one part may take while its sessions disagree, before the evaluation gives up. */
const MAX_REPORTS = 4;
/** Two losses agree within this relative difference (both sides compute in float64). */
const LOSS_TOLERANCE = 1e-6;

interface Part {
  heldOut: HeldOut;
  reports: { sessionId: string; measure: HeldOutMeasure }[];
  /** Live leases on this part. */
  leases: { leaseId: number; sessionId: string; deadline: number }[];
  agreed?: HeldOutMeasure;
}

export type ReportOutcome =
  | { ok: false; code: "unknownLease" | "leaseExpired" | "claimMismatch"; message: string }
  | {
      ok: true;
      /** Sessions whose reports disagree with a kept result. */
      strikes: string[];
    };

export class ContributorEvaluation {
  private readonly parts: Part[];
  /** Sessions whose reports disagreed with what two others agreed on. */
  disagreements = 0;
  reports = 0;

  constructor(
    readonly job: EvaluationJob,
    parts: readonly HeldOut[],
    /** After this instant the coordinator evaluates the version itself. */
    readonly deadline: number,
  ) {
    this.parts = parts.map((heldOut) => ({ heldOut, reports: [], leases: [] }));
  }

  get done(): boolean {
    return this.parts.every((p) => p.agreed !== undefined);
  }

  /** A part no two reports could agree on: the evaluation cannot finish by contributors. */
  get failed(): boolean {
    return this.parts.some((p) => p.agreed === undefined && p.reports.length >= MAX_REPORTS);
  }

  /**
   * A part for this session, leased until `deadline`: one it has neither measured nor holds,
   * that still wants a report. None while the session holds another evaluation lease.
   */
  offer(sessionId: string, leaseId: number, deadline: number): HeldOut | undefined {
    if (this.parts.some((p) => p.leases.some((l) => l.sessionId === sessionId))) return undefined;
    for (const p of this.parts) {
      if (p.agreed || p.reports.some((r) => r.sessionId === sessionId)) continue;
      const given = p.reports.length + p.leases.length;
      // Two reports to begin with; once two disagree, one more at a time.
      const wanted = p.reports.length >= 2 ? p.reports.length + 1 : 2;
      if (given >= Math.min(wanted, MAX_REPORTS)) continue;
      p.leases.push({ leaseId, sessionId, deadline });
      return p.heldOut;
    }
    return undefined;
  }

  /** A report on one of this evaluation's leases: checked, compared, and kept or refused. */
  report(sessionId: string, r: EvaluationReport, now: number): ReportOutcome {
    const part = this.parts.find((p) =>
      p.leases.some((l) => l.leaseId === r.leaseId && l.sessionId === sessionId),
    );
    if (!part || r.version !== this.job.version)
      return {
        ok: false,
        code: "unknownLease",
        message: `no evaluation lease ${r.leaseId} of version ${r.version} is held by this session`,
      };
    const lease = part.leases.find((l) => l.leaseId === r.leaseId)!;
    part.leases = part.leases.filter((l) => l !== lease);
    if (now > lease.deadline)
      return { ok: false, code: "leaseExpired", message: `evaluation lease ${r.leaseId} expired` };
    const problem = this.implausible(part.heldOut, r);
    if (problem) return { ok: false, code: "claimMismatch", message: problem };
    this.reports++;
    const measure = { loss: r.loss, correct: r.correct, sample: r.sample };
    part.reports.push({ sessionId, measure });
    if (part.agreed) {
      // A late report on a settled part is still compared.
      const dissent = agree(measure, part.agreed) ? [] : [sessionId];
      this.disagreements += dissent.length;
      return { ok: true, strikes: dissent };
    }
    const partner = part.reports.find(
      (o) => o.sessionId !== sessionId && agree(o.measure, measure),
    );
    if (!partner) return { ok: true, strikes: [] };
    // Settled: every report so far that disagrees with the two that agree is struck, once.
    part.agreed = partner.measure;
    const strikes = part.reports
      .filter((o) => !agree(o.measure, partner.measure))
      .map((o) => o.sessionId);
    this.disagreements += strikes.length;
    return { ok: true, strikes };
  }

  /** Leases past their deadline are dropped, so that their parts are offered again. */
  expire(now: number): void {
    for (const p of this.parts) p.leases = p.leases.filter((l) => l.deadline >= now);
  }

  /** The session's connection ended: its leases go back. */
  release(sessionId: string): void {
    for (const p of this.parts) p.leases = p.leases.filter((l) => l.sessionId !== sessionId);
  }

  /** The evaluation from the agreed parts (when `done`). */
  result(): EvaluationResult {
    const parts = this.parts.map((p) => p.heldOut);
    return {
      ...combineParts(
        this.job,
        parts,
        this.parts.map((p) => p.agreed!),
      ),
      where: `by contributors: ${parts.length} parts, each measured by two sessions whose results agreed (${this.reports} reports, ${this.disagreements} disagreeing)`,
    };
  }

  /** Why a report cannot be an honest measure of its part, or nothing. */
  private implausible(h: HeldOut, r: EvaluationReport): string | undefined {
    if (h.sampleTokens > 0) {
      if (r.loss !== 0 || r.correct !== 0) return "a sample's report carries no loss";
      // One token is at most a few UTF-16 units in any vocabulary this coordinator builds.
      if (r.sample.length > 4 * (h.prompt.length + h.sampleTokens))
        return `a sample of ${h.sampleTokens} tokens is not ${r.sample.length} characters long`;
      return undefined;
    }
    if (r.sample !== "") return "a loss part's report carries no sample";
    if (!Number.isFinite(r.loss) || r.loss < 0)
      return `loss ${r.loss} is not a finite sum of losses`;
    const T = this.job.model.transformer?.contextLength ?? 1;
    const most = h.offsets.length * T;
    if (!Number.isInteger(r.correct) || r.correct > most)
      return `${r.correct} correct predictions, of at most ${most}`;
    return undefined;
  }
}

/** Two measures of one part agree: the same sample, losses within float64 noise, correct ±1. */
function agree(a: HeldOutMeasure, b: HeldOutMeasure): boolean {
  return (
    a.sample === b.sample &&
    Math.abs(a.loss - b.loss) <= LOSS_TOLERANCE * Math.max(1, Math.abs(a.loss)) &&
    Math.abs(a.correct - b.correct) <= 1
  );
}
