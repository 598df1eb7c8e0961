// Per-address limits for the whole deployment. A Worker runs in many isolates at once, and a
// count kept in one (as Node keeps it in its process) would give an attacker that many times the
// limit. The wrong-admin-token count and the open event streams of an address live instead in a
// Durable Object, one of LIMIT_SHARDS picked by the address, so every isolate sees the same
// count and no single object carries every request.
//
// What stays per isolate is what protects the isolate itself: the total of streams it holds.
// The counts are in memory, not storage: an object evicted after a quiet spell forgets them,
// which is when there is nothing to limit.
import { AdminFailureLimit } from "@pangea/coordinator/core";
import { DurableObject } from "cloudflare:workers";

export const LIMIT_SHARDS = 16;
/** Event streams one address may hold open across the deployment (as Node: 16). */
export const STREAMS_PER_ADDRESS = 16;
/**
 * The longest an event stream stays open on the edge unless PANGEA_STREAM_MAX_MS says otherwise:
 * the Worker ends it then, and EventSource reconnects by itself. A stream whose isolate died
 * without saying so is forgotten a minute after that.
 */
export const STREAM_MAX_MS = 5 * 60_000;

export class LimitObject extends DurableObject {
  private readonly failures = new AdminFailureLimit();
  private readonly streams = new Map<string, Map<string, number>>();

  /** AdminFailureLimit.attempt, for every isolate. */
  admin(address: string, ok: boolean): number {
    return this.failures.attempt(address, ok);
  }

  /**
   * A stream `id` opens for `address`, to be ended within `maxMs`: false when the address holds
   * as many as it may.
   */
  openStream(address: string, id: string, maxMs = STREAM_MAX_MS): boolean {
    const now = Date.now();
    const open = this.streams.get(address) ?? new Map<string, number>();
    for (const [other, expires] of open) if (expires <= now) open.delete(other);
    if (open.size >= STREAMS_PER_ADDRESS) return false;
    open.set(id, now + maxMs + 60_000);
    this.streams.set(address, open);
    return true;
  }

  closeStream(address: string, id: string): void {
    const open = this.streams.get(address);
    open?.delete(id);
    if (open?.size === 0) this.streams.delete(address);
  }
}

/** The limit object that holds `address`'s counts. */
export function limitsFor(
  namespace: DurableObjectNamespace<LimitObject>,
  address: string,
): DurableObjectStub<LimitObject> {
  let h = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) h = Math.imul(h ^ address.charCodeAt(i), 0x01000193);
  return namespace.get(namespace.idFromName(`limits-${(h >>> 0) % LIMIT_SHARDS}`));
}
