// Which sessions may serve a run's current parameter frame to others over WebRTC (Run config
// `peers`). A session holds the version the coordinator sent it, or the one it trained from;
// each holder is named for at most `fanout` receivers a version, so the frame spreads as a tree
// whose root is the coordinator's one send. The receiver checks the bytes against the frame's
// SHA-256 (carried in the lease) and falls back to the coordinator (ParametersRequest) when they
// do not match; a holder accused of bad bytes is sent the next receiver that has not accused it,
// and is struck (and never named again) once two different sessions accuse it, so that one
// hostile receiver cannot frame an honest peer, who clears itself with a good transfer.
//
// Receivers ask in bursts (a synchronous version closes and every session wants the next one
// within milliseconds), before any of them holds it. A receiver named a holder is therefore
// itself named, once the holders are full, as a provisional holder: its peers' requests wait
// for its own fetch to finish (peers.ts AWAIT_FRAME_MS). Only one hop: a receiver named a
// provisional holder is not one, so no request waits behind more than one other transfer.
import type { IceServer } from "@pangea/shared";

export interface ParameterSourceOptions {
  /** Receivers one holder serves per version. */
  fanout: number;
}

/** Failed transfers (and no success since) after which a session gets its frames from the coordinator. */
export const UNREACHABLE_AFTER = 3;

export class ParameterSources {
  private version = -1;
  /** Holders of `version`, and how many receivers each was named for. */
  private readonly holders = new Map<string, number>();
  /** Receivers of `version` named a holder, still fetching it: named once the holders are full. */
  private readonly provisional = new Map<string, number>();
  /** Sessions never named again in this run: struck for serving bad bytes. */
  private readonly barred = new Set<string>();
  /** Who accused each session of serving bad bytes, until the accusations make a strike. */
  private readonly accusers = new Map<string, Set<string>>();
  /** Transfers a session took part in that failed (no route, too slow) since its last success. */
  private readonly failures = new Map<string, number>();

  constructor(private readonly options: ParameterSourceOptions = { fanout: 4 }) {}

  /** `session` holds `version`'s frame (a newer version forgets the older holders). */
  hold(session: string, version: number): void {
    if (version > this.version) {
      this.version = version;
      this.holders.clear();
      this.provisional.clear();
    }
    if (version === this.version && !this.holders.has(session) && !this.barred.has(session)) {
      this.holders.set(session, this.provisional.get(session) ?? 0);
      this.provisional.delete(session);
    }
  }

  /**
   * A holder of `version` to serve `receiver`, the least loaded under the fanout that `usable`
   * accepts (connected, not quarantined); undefined when there is none. Counts the naming.
   */
  pick(receiver: string, version: number, usable: (id: string) => boolean): string | undefined {
    if (version !== this.version || !this.reachable(receiver)) return undefined;
    const held = this.least(this.holders, receiver, usable);
    if (held !== undefined) {
      this.holders.set(held, this.holders.get(held)! + 1);
      if (!this.barred.has(receiver)) this.provisional.set(receiver, 0);
      return held;
    }
    const fetching = this.least(this.provisional, receiver, usable);
    if (fetching !== undefined) this.provisional.set(fetching, this.provisional.get(fetching)! + 1);
    return fetching;
  }

  /** The least loaded of `among` under the fanout that may serve `receiver`. */
  private least(
    among: Map<string, number>,
    receiver: string,
    usable: (id: string) => boolean,
  ): string | undefined {
    let best: string | undefined;
    let load = this.options.fanout;
    for (const [id, named] of among) {
      if (id === receiver || named >= this.options.fanout || !this.reachable(id) || !usable(id))
        continue;
      // A holder someone accused is tried by someone else first: a second accusation strikes
      // it soon, and an honest one accused falsely clears itself with a good transfer.
      const accused = this.accusers.get(id);
      if (accused && !accused.has(receiver)) return id;
      if (named < load) {
        best = id;
        load = named;
      }
    }
    return best;
  }

  /** The session left, or said it lacks the version. */
  forget(session: string): void {
    this.holders.delete(session);
    this.provisional.delete(session);
  }

  /**
   * A transfer from `peer` to `receiver` failed without a wrong byte (no route, too slow). Either
   * may be the one that cannot connect (a firewall that drops UDP): a session with
   * UNREACHABLE_AFTER such failures and no success since is left out of transfers, both ways.
   */
  undelivered(peer: string, receiver: string): void {
    this.holders.delete(peer);
    this.provisional.delete(peer);
    for (const id of [peer, receiver]) this.failures.set(id, (this.failures.get(id) ?? 0) + 1);
  }

  /** A transfer worked: neither side is the one that cannot connect. */
  delivered(peer: string, receiver: string): void {
    this.failures.delete(peer);
    this.failures.delete(receiver);
    this.accusers.delete(peer);
  }

  /** Whether a session takes part in transfers: not one whose transfers keep failing. */
  reachable(id: string): boolean {
    return (this.failures.get(id) ?? 0) < UNREACHABLE_AFTER;
  }

  /**
   * `accuser` got bytes from `peer` that did not hash to the frame: the next receiver that has not
   * accused it is sent to it (pick), for a second opinion. Returns true when the accusation completes a strike against it (a second, different
   * accuser); a struck peer is not named again in this run.
   */
  accuse(peer: string, accuser: string): boolean {
    const set = this.accusers.get(peer) ?? new Set<string>();
    set.add(accuser);
    if (set.size < 2) {
      this.accusers.set(peer, set);
      return false;
    }
    this.accusers.delete(peer);
    this.barred.add(peer);
    this.holders.delete(peer);
    this.provisional.delete(peer);
    return true;
  }
}

/**
 * STUN/TURN servers from a deployment's setting (PANGEA_ICE_SERVERS): comma-separated URLs
 * ("stun:stun.example.org:3478"), or a JSON array of {url, username, credential} for TURN.
 * Throws with the reason on anything else, so that a typo stops the start, not every call.
 */
export function parseIceServers(value: string | undefined): IceServer[] {
  const text = value?.trim() ?? "";
  if (text === "") return [];
  let servers: unknown;
  try {
    servers = text.startsWith("[")
      ? JSON.parse(text)
      : text.split(",").map((url) => ({ url: url.trim() }));
  } catch (e) {
    throw new Error(`PANGEA_ICE_SERVERS: not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(servers)) throw new Error("PANGEA_ICE_SERVERS: a list of servers");
  return servers.map((s: { url?: unknown; username?: unknown; credential?: unknown }, i) => {
    if (typeof s?.url !== "string" || !/^(stun|stuns|turn|turns):\S+$/.test(s.url))
      throw new Error(`PANGEA_ICE_SERVERS: server ${i + 1} needs a stun: or turn: url`);
    for (const key of ["username", "credential"] as const)
      if (s[key] !== undefined && typeof s[key] !== "string")
        throw new Error(`PANGEA_ICE_SERVERS: server ${i + 1}'s ${key} must be text`);
    return {
      url: s.url,
      ...(typeof s.username === "string" ? { username: s.username } : {}),
      ...(typeof s.credential === "string" ? { credential: s.credential } : {}),
    };
  });
}
