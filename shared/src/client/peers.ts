// Parameter frames between sessions, over WebRTC data channels (simple-peer): a session that is
// behind fetches the current version's frame from a peer the coordinator named in its lease, and
// serves the frames it holds to peers that ask. The coordinator relays the signaling (SDP offers,
// answers, ICE candidates) between sessions it introduced; the receiver checks the bytes against
// the SHA-256 the lease carries before using them (contributor.ts), so a peer can only waste a
// receiver's time, never change what it trains on.
//
// Runtime-agnostic: the page (browser RTCPeerConnection) and the headless worker (@roamhq/wrtc)
// each pass a `createPeer` that makes a simple-peer instance; the core suite simulates the network.
//
// On a connection, messages are length-prefixed ([u32 bytes][u8 kind][...]): a data channel
// delivers whole messages, but simple-peer's stream interface may join or split them, and a
// prefix makes that harmless.
import type { IceServer, PeerFailure } from "../wire/messages.ts";

/** What a Contributor needs from its peers. */
export interface PeerNetwork {
  /** STUN/TURN servers from the welcome (none: host candidates only, enough on one network). */
  configure(iceServers: readonly IceServer[]): void;
  /** `version`'s parameter frame from session `peer`; rejects with a PeerFetchError. */
  fetch(peer: string, version: number, timeoutMs: number): Promise<Uint8Array>;
  /** A frame this session holds, served to peers that ask (the newest KEPT_VERSIONS are kept). */
  offer(version: number, frame: Uint8Array): void;
  /**
   * Bytes [start, end) of the update session `peer` declared on lease `leaseId` (reduction
   * among peers); rejects with a PeerFetchError.
   */
  fetchPart(
    peer: string,
    leaseId: number,
    start: number,
    end: number,
    timeoutMs: number,
  ): Promise<Uint8Array>;
  /** An update this session declared, served in parts to its group (until `unshare`). */
  share(leaseId: number, update: Uint8Array): void;
  unshare(leaseId: number): void;
  /** A signaling payload the coordinator relayed from session `from`. */
  signal(from: string, payload: Uint8Array): void;
  /** Open connections (the contributor page shows them) and bytes through them. */
  stats(): PeerStats;
  close(): void;
}

export interface PeerStats {
  connected: number;
  bytesIn: number;
  bytesOut: number;
  framesServed: number;
  framesFetched: number;
}

/** Counters at zero, for a PeerNetwork to start from. */
export function emptyPeerStats(): PeerStats {
  return { connected: 0, bytesIn: 0, bytesOut: 0, framesServed: 0, framesFetched: 0 };
}

export class PeerFetchError extends Error {
  override readonly name = "PeerFetchError";
  constructor(
    readonly failure: PeerFailure,
    message: string,
  ) {
    super(message);
  }
}

/** The part of a simple-peer instance this module uses (its types stay with the adapters). */
export interface SimplePeerLike {
  signal(data: unknown): void;
  send(data: Uint8Array): void;
  destroy(): void;
  on(event: "signal", listener: (data: unknown) => void): unknown;
  on(event: "connect" | "close", listener: () => void): unknown;
  on(event: "data", listener: (data: Uint8Array) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  /** Bytes queued on the data channel (RTCDataChannel.bufferedAmount). */
  readonly bufferSize: number;
}

export type CreatePeer = (options: {
  initiator: boolean;
  iceServers: readonly IceServer[];
}) => SimplePeerLike;

/** Frames kept for peers: the current version and the one before (a lagging peer's lease). */
export const KEPT_VERSIONS = 2;
/** Declared updates kept for a group (one a version; a slow group may overlap the next). */
const KEPT_UPDATES = 4;
/** Connections one session keeps open; the least recently used goes first. */
export const MAX_CONNECTIONS = 16;
/** Bytes of a frame per data-channel message: under every implementation's message limit. */
const CHUNK_BYTES = 16 << 10;
/** Pause sending while this much is queued on the channel (Chromium closes it near 16 MiB). */
const HIGH_WATER_BYTES = 1 << 20;
/** The largest frame a peer may announce: the coordinator's own frame limit bounds real ones. */
const MAX_FRAME_BYTES = 256 << 20;
/**
 * How long a request for a frame newer than any held waits for it. The coordinator names a
 * holder in the same moment it sends that holder the frame, so the receiver's request often
 * arrives while the frame is still on its way (or being hashed by a holder that itself fetched
 * it from a peer); answering "missing" then sends the receiver to the coordinator for a second
 * frame out. Under every receiver's fetch timeout (contributor.ts PEER_FETCH_MIN_MS).
 */
export const AWAIT_FRAME_MS = 1_500;
/** Requests waiting for a frame, at most (the rest are answered "missing" at once). */
const MAX_AWAITING = 32;
/**
 * Of those, from one peer: an honest receiver asks a holder for one version at a time, so a peer
 * that asks for more only takes places that other receivers' requests need.
 */
const MAX_AWAITING_PER_PEER = 4;
/** How far past the newest frame held a request may be and still wait (see expecting). */
const AWAIT_AHEAD = 2;

// Message kinds. Each body starts with the item it is about: [u8 space][f64 id][u32 start]
// (a parameter frame: space 0, its version, start 0; a part of a declared update: space 1, its
// lease id, its first byte). WANT adds [u32 end] (parts), HAVE [u32 bytes], CHUNK the bytes.
const WANT = 1;
const HAVE = 2;
const CHUNK = 3;
const MISSING = 4;
const HEAD = 13;
const FRAME = 0;
const PART = 1;

interface Item {
  space: typeof FRAME | typeof PART;
  id: number;
  start: number;
  /** A part's end (exclusive); 0 for a whole frame. */
  end: number;
}

const keyOf = (item: Item) => `${item.space}:${item.id}:${item.start}`;

interface Connection {
  id: string;
  peer: string;
  sp: SimplePeerLike;
  open: boolean;
  lastUsed: number;
  /** Bytes received and not yet parsed into whole messages. */
  pending: Uint8Array;
  /** Items being received from this peer, by key. */
  incoming: Map<string, { bytes: Uint8Array; filled: number }>;
  /** Called once the channel opens (fetches that waited for it). */
  onOpen: Array<() => void>;
}

/** A peer's request for a frame this session does not hold yet (AWAIT_FRAME_MS). */
interface Awaiting {
  connection: Connection;
  head: Uint8Array;
  version: number;
  timer: ReturnType<typeof setTimeout>;
}

interface Waiter {
  peer: string;
  key: string;
  resolve: (bytes: Uint8Array) => void;
  reject: (e: PeerFetchError) => void;
}

export class WebRtcPeers implements PeerNetwork {
  private iceServers: readonly IceServer[] = [];
  private readonly connections = new Map<string, Connection>();
  private readonly frames = new Map<number, Uint8Array>();
  private readonly updates = new Map<number, Uint8Array>();
  private readonly waiters = new Set<Waiter>();
  private readonly awaiting = new Set<Awaiting>();
  private readonly counts = emptyPeerStats();
  private serial = 0;
  private closed = false;

  constructor(
    private readonly createPeer: CreatePeer,
    private readonly sendSignal: (to: string, payload: Uint8Array) => void,
  ) {}

  configure(iceServers: readonly IceServer[]): void {
    this.iceServers = iceServers;
  }

  fetch(peer: string, version: number, timeoutMs: number): Promise<Uint8Array> {
    return this.request(peer, { space: FRAME, id: version, start: 0, end: 0 }, timeoutMs).then(
      (frame) => {
        this.counts.framesFetched++;
        return frame;
      },
    );
  }

  fetchPart(
    peer: string,
    leaseId: number,
    start: number,
    end: number,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    return this.request(peer, { space: PART, id: leaseId, start, end }, timeoutMs);
  }

  private request(peer: string, item: Item, timeoutMs: number): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new PeerFetchError("unreachable", "peers are closed"));
    const what = item.space === FRAME ? `version ${item.id}` : `part of update ${item.id}`;
    return new Promise<Uint8Array>((resolve, reject) => {
      const waiter: Waiter = { peer, key: keyOf(item), resolve, reject };
      let connection = this.connectionTo(peer);
      const settle = (f: () => void) => {
        if (!this.waiters.delete(waiter)) return;
        clearTimeout(timer);
        f();
      };
      waiter.resolve = (bytes) => settle(() => resolve(bytes));
      waiter.reject = (e) => settle(() => reject(e));
      const timer = setTimeout(() => {
        const opened = connection?.open === true;
        waiter.reject(
          new PeerFetchError(
            opened ? "timeout" : "unreachable",
            opened
              ? `${peer} did not send ${what} within ${timeoutMs} ms`
              : `no WebRTC connection to ${peer} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
      connection ??= this.open(peer, `${randomId()}`, true);
      const body = new Uint8Array(HEAD + 4);
      writeHead(body, item);
      new DataView(body.buffer).setUint32(HEAD, item.end, true);
      const ask = () => this.write(connection!, WANT, body);
      if (connection.open) ask();
      else connection.onOpen.push(ask);
    });
  }

  offer(version: number, frame: Uint8Array): void {
    this.frames.set(version, frame);
    for (const v of [...this.frames.keys()].sort((a, b) => b - a).slice(KEPT_VERSIONS))
      this.frames.delete(v);
    for (const a of [...this.awaiting]) {
      if (a.version > version) continue;
      this.awaiting.delete(a);
      clearTimeout(a.timer);
      const bytes = this.frames.get(a.version);
      if (bytes) void this.serve(a.connection, a.head, bytes);
      else this.write(a.connection, MISSING, a.head);
    }
  }

  share(leaseId: number, update: Uint8Array): void {
    this.updates.set(leaseId, update);
    while (this.updates.size > KEPT_UPDATES) this.updates.delete(this.updates.keys().next().value!);
  }

  unshare(leaseId: number): void {
    this.updates.delete(leaseId);
  }

  signal(from: string, payload: Uint8Array): void {
    if (this.closed) return;
    let envelope: { c?: unknown; d?: unknown };
    try {
      envelope = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return; // Not ours: a peer that sends junk signals only wastes its own quota.
    }
    if (typeof envelope.c !== "string" || envelope.c.length > 64) return;
    const id = `${from}/${envelope.c}`;
    const connection = this.connections.get(id) ?? this.open(from, envelope.c, false);
    try {
      connection.sp.signal(envelope.d);
    } catch {
      this.drop(connection);
    }
  }

  stats(): PeerStats {
    let connected = 0;
    for (const c of this.connections.values()) if (c.open) connected++;
    return { ...this.counts, connected };
  }

  close(): void {
    this.closed = true;
    for (const c of [...this.connections.values()]) this.drop(c);
    for (const w of [...this.waiters]) w.reject(new PeerFetchError("unreachable", "peers closed"));
    for (const a of this.awaiting) clearTimeout(a.timer);
    this.awaiting.clear();
  }

  private connectionTo(peer: string): Connection | undefined {
    let best: Connection | undefined;
    for (const c of this.connections.values())
      if (c.peer === peer && (!best || (c.open && !best.open))) best = c;
    return best;
  }

  private open(peer: string, tag: string, initiator: boolean): Connection {
    if (this.connections.size >= MAX_CONNECTIONS) {
      const oldest = [...this.connections.values()].sort((a, b) => a.lastUsed - b.lastUsed)[0]!;
      this.drop(oldest);
    }
    const sp = this.createPeer({ initiator, iceServers: this.iceServers });
    const connection: Connection = {
      id: `${peer}/${tag}`,
      peer,
      sp,
      open: false,
      lastUsed: ++this.serial,
      pending: new Uint8Array(0),
      incoming: new Map(),
      onOpen: [],
    };
    this.connections.set(connection.id, connection);
    sp.on("signal", (d) => {
      if (this.connections.get(connection.id) !== connection) return;
      this.sendSignal(peer, new TextEncoder().encode(JSON.stringify({ c: tag, d })));
    });
    sp.on("connect", () => this.opened(connection));
    sp.on("data", (data) => this.received(connection, data));
    sp.on("close", () => this.drop(connection));
    sp.on("error", () => this.drop(connection));
    return connection;
  }

  private drop(connection: Connection): void {
    if (this.connections.get(connection.id) !== connection) return;
    this.connections.delete(connection.id);
    connection.open = false;
    try {
      connection.sp.destroy();
    } catch {}
    for (const w of [...this.waiters])
      if (w.peer === connection.peer && !this.connectionTo(w.peer))
        w.reject(new PeerFetchError("unreachable", `the connection to ${w.peer} closed`));
  }

  private opened(connection: Connection): void {
    if (connection.open) return;
    connection.open = true;
    for (const f of connection.onOpen.splice(0)) f();
  }

  private received(connection: Connection, data: Uint8Array): void {
    // The channel delivers before simple-peer reports "connect" on this side (that waits for ICE
    // as well): data proves it open, and a request that came with it must be answered.
    this.opened(connection);
    connection.lastUsed = ++this.serial;
    this.counts.bytesIn += data.byteLength;
    let buffer = concat(connection.pending, data);
    while (buffer.byteLength >= 5) {
      const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(0, true);
      if (length < 1 || length > CHUNK_BYTES + 64) {
        this.drop(connection); // Not our framing: whatever it is, stop listening to it.
        return;
      }
      if (buffer.byteLength < 4 + length) break;
      this.message(connection, buffer[4]!, buffer.subarray(5, 4 + length));
      if (this.connections.get(connection.id) !== connection) return;
      buffer = buffer.subarray(4 + length);
    }
    connection.pending = buffer.byteLength > 0 ? buffer.slice() : new Uint8Array(0);
  }

  private message(connection: Connection, kind: number, body: Uint8Array): void {
    if (body.byteLength < HEAD) return;
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const space = body[0]!;
    const item: Item = {
      space: space === PART ? PART : FRAME,
      id: view.getFloat64(1, true),
      start: view.getUint32(9, true),
      end: body.byteLength >= HEAD + 4 ? view.getUint32(HEAD, true) : 0,
    };
    if ((space !== FRAME && space !== PART) || !Number.isSafeInteger(item.id) || item.id < 0)
      return;
    const key = keyOf(item);
    switch (kind) {
      case WANT: {
        const head = body.slice(0, HEAD);
        const bytes = this.held(item);
        if (bytes) void this.serve(connection, head, bytes);
        else if (this.expecting(item, connection)) this.await(connection, head, item.id);
        else this.write(connection, MISSING, head);
        return;
      }
      case HAVE: {
        const bytes = item.end; // HAVE carries the byte count where WANT carries the end
        if (bytes < 1 || bytes > MAX_FRAME_BYTES || !this.wanted(connection.peer, key)) return;
        connection.incoming.set(key, { bytes: new Uint8Array(bytes), filled: 0 });
        return;
      }
      case CHUNK: {
        const into = connection.incoming.get(key);
        if (!into) return;
        const chunk = body.subarray(HEAD);
        if (into.filled + chunk.byteLength > into.bytes.byteLength) {
          connection.incoming.delete(key);
          this.fail(connection.peer, key, "badHash", `${connection.peer} sent too many bytes`);
          return;
        }
        into.bytes.set(chunk, into.filled);
        into.filled += chunk.byteLength;
        if (into.filled === into.bytes.byteLength) {
          connection.incoming.delete(key);
          for (const w of [...this.waiters])
            if (w.peer === connection.peer && w.key === key) w.resolve(into.bytes);
        }
        return;
      }
      case MISSING:
        this.fail(connection.peer, key, "missing", `${connection.peer} does not hold ${key}`);
        return;
    }
  }

  /**
   * Whether `item` is a frame that may be on its way here, and `connection` may wait for it: one
   * of the AWAIT_AHEAD versions after the newest held (the coordinator names a holder as it sends
   * it a version, and a slow tab may skip one), or any while none is held yet. A request further
   * ahead cannot be answered soon and would only hold a place, so it is told "missing" at once.
   */
  private expecting(item: Item, connection: Connection): boolean {
    if (item.space !== FRAME || this.awaiting.size >= MAX_AWAITING) return false;
    let newest = -1;
    for (const v of this.frames.keys()) newest = Math.max(newest, v);
    if (newest >= 0 && (item.id <= newest || item.id > newest + AWAIT_AHEAD)) return false;
    let fromPeer = 0;
    for (const a of this.awaiting) if (a.connection === connection) fromPeer++;
    return fromPeer < MAX_AWAITING_PER_PEER;
  }

  private await(connection: Connection, head: Uint8Array, version: number): void {
    const a: Awaiting = {
      connection,
      head,
      version,
      timer: setTimeout(() => {
        if (this.awaiting.delete(a)) this.write(connection, MISSING, head);
      }, AWAIT_FRAME_MS),
    };
    this.awaiting.add(a);
  }

  /** What this session serves for `item`: a frame it holds, or a range of an update it shares. */
  private held(item: Item): Uint8Array | undefined {
    if (item.space === FRAME) return this.frames.get(item.id);
    const update = this.updates.get(item.id);
    if (!update || item.start >= item.end || item.end > update.byteLength) return undefined;
    return update.subarray(item.start, item.end);
  }

  private wanted(peer: string, key: string): boolean {
    for (const w of this.waiters) if (w.peer === peer && w.key === key) return true;
    return false;
  }

  private fail(peer: string, key: string, failure: PeerFailure, message: string): void {
    for (const w of [...this.waiters])
      if (w.peer === peer && w.key === key) w.reject(new PeerFetchError(failure, message));
  }

  /** Sends an item's bytes in chunks, pausing while the channel's queue is full. */
  private async serve(connection: Connection, head: Uint8Array, bytes: Uint8Array): Promise<void> {
    const have = new Uint8Array(HEAD + 4);
    have.set(head);
    new DataView(have.buffer).setUint32(HEAD, bytes.byteLength, true);
    this.write(connection, HAVE, have);
    for (let at = 0; at < bytes.byteLength; at += CHUNK_BYTES) {
      while (connection.open && connection.sp.bufferSize > HIGH_WATER_BYTES)
        await new Promise((r) => setTimeout(r, 5));
      if (!connection.open) return;
      const chunk = bytes.subarray(at, Math.min(bytes.byteLength, at + CHUNK_BYTES));
      this.write(connection, CHUNK, concat(head, chunk));
    }
    if (head[0] === FRAME) this.counts.framesServed++;
  }

  private write(connection: Connection, kind: number, body: Uint8Array): void {
    if (!connection.open) return;
    const message = new Uint8Array(5 + body.byteLength);
    new DataView(message.buffer).setUint32(0, 1 + body.byteLength, true);
    message[4] = kind;
    message.set(body, 5);
    connection.lastUsed = ++this.serial;
    this.counts.bytesOut += message.byteLength;
    try {
      connection.sp.send(message);
    } catch {
      this.drop(connection);
    }
  }
}

function writeHead(body: Uint8Array, item: Item): void {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  body[0] = item.space;
  view.setFloat64(1, item.id, true);
  view.setUint32(9, item.start, true);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

function randomId(): string {
  return Math.random().toString(36).slice(2, 12);
}
