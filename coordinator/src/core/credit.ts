// Credit, as BOINC calls it: what each session contributed, counted only in what the coordinator
// knows. A session earns the samples of the leases it was handed and whose updates were accepted
// and committed (or, for a replica, accepted and found to agree); nothing it claims about itself
// counts. The part of that credit that redundancy checked (the same batch computed by two
// sessions, with results that agree) is kept apart as verified. A session quarantined for
// failing checks (a freeloader caught by redundancy) forfeits all of it.
import type { SessionStats } from "./ports.ts";

/** The longest leaderboard name; longer ones are cut. */
export const MAX_DISPLAY_NAME = 32;
/** The most leaderboard rows a status carries. */
export const LEADERBOARD_ROWS = 100;

/**
 * The visitor's chosen name, made safe to show: control and formatting characters removed,
 * whitespace collapsed, at most MAX_DISPLAY_NAME characters. "" is anonymous.
 */
export function displayName(text: string | undefined): string {
  const clean = (text ?? "")
    .replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cn}]/gu, "")
    .replace(/\s+/gu, " ")
    .trim();
  return [...clean].slice(0, MAX_DISPLAY_NAME).join("");
}

/** A committed or agreeing update earns its lease's samples. */
export function earn(s: SessionStats, samples: number): void {
  if (s.quarantined) return;
  s.credit = (s.credit ?? 0) + samples;
}

/** A committed copy that a third copy later proved wrong: what it earned is given back. */
export function unearn(s: SessionStats, samples: number): void {
  s.credit = Math.max(0, (s.credit ?? 0) - samples);
}

/** Redundancy found two copies of a batch to agree: both sessions' samples are verified. */
export function verify(s: SessionStats, samples: number): void {
  if (s.quarantined) return;
  s.verifiedCredit = (s.verifiedCredit ?? 0) + samples;
}

/** Quarantine forfeits everything earned. */
export function forfeit(s: SessionStats): void {
  s.credit = 0;
  s.verifiedCredit = 0;
}

export interface LeaderboardRow {
  /** The session's public id (the token, which resumes it, is never shown). */
  id: string;
  /** The name its visitor chose; "" = anonymous. */
  name: string;
  /** Samples credited. */
  samples: number;
  /** Of those, samples verified by redundancy. */
  verified: number;
}

/**
 * The public view of the run's contributors: sessions with credit, most first (ties by id, so
 * every reader sees the same order), quarantined ones left out, at most LEADERBOARD_ROWS.
 */
export function leaderboard(sessions: Iterable<SessionStats>): LeaderboardRow[] {
  return [...sessions]
    .filter((s) => !s.quarantined && (s.credit ?? 0) > 0)
    .sort((a, b) => (b.credit ?? 0) - (a.credit ?? 0) || (a.id < b.id ? -1 : 1))
    .slice(0, LEADERBOARD_ROWS)
    .map((s) => ({
      id: s.id,
      name: s.name ?? "",
      samples: s.credit ?? 0,
      verified: s.verifiedCredit ?? 0,
    }));
}
