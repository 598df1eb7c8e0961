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
/** Connections one session keeps open; the least recently used goes first. */
export const MAX_CONNECTIONS = 16;
/** Bytes of a frame per data-channel message: under every implementation's message limit. */
const CHUNK_BYTES = 16 << 10;
/** Pause sending while this much is queued on the channel (Chromium closes it near 16 MiB). */
const HIGH_WATER_BYTES = 1 << 20;
/** The largest frame a peer may announce: the coordinator's own frame limit bounds real ones. */
const MAX_FRAME_BYTES = 256 << 20;

const WANT = 1;
const HAVE = 2;
const CHUNK = 3;
const MISSING = 4;

interface Connection {
  id: string;
  peer: string;
  sp: SimplePeerLike;
  open: boolean;
  lastUsed: number;
  /** Bytes received and not yet parsed into whole messages. */
  pending: Uint8Array;
  /** Frames being received from this peer, by version. */
  incoming: Map<number, { bytes: Uint8Array; filled: number }>;
  /** Called once the channel opens (fetches that waited for it). */
  onOpen: Array<() => void>;
}

interface Waiter {
  peer: string;
  version: number;
  resolve: (frame: Uint8Array) => void;
  reject: (e: PeerFetchError) => void;
}

export class WebRtcPeers implements PeerNetwork {
  private iceServers: readonly IceServer[] = [];
  private readonly connections = new Map<string, Connection>();
  private readonly frames = new Map<number, Uint8Array>();
  private readonly waiters = new Set<Waiter>();
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
    if (this.closed) return Promise.reject(new PeerFetchError("unreachable", "peers are closed"));
    return new Promise<Uint8Array>((resolve, reject) => {
      const waiter: Waiter = { peer, version, resolve, reject };
      let connection = this.connectionTo(peer);
      const settle = (f: () => void) => {
        if (!this.waiters.delete(waiter)) return;
        clearTimeout(timer);
        f();
      };
      waiter.resolve = (frame) => settle(() => resolve(frame));
      waiter.reject = (e) => settle(() => reject(e));
      const timer = setTimeout(() => {
        const opened = connection?.open === true;
        waiter.reject(
          new PeerFetchError(
            opened ? "timeout" : "unreachable",
            opened
              ? `${peer} did not send version ${version} within ${timeoutMs} ms`
              : `no WebRTC connection to ${peer} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
      connection ??= this.open(peer, `${randomId()}`, true);
      const ask = () => this.write(connection!, WANT, versionBytes(version));
      if (connection.open) ask();
      else connection.onOpen.push(ask);
    });
  }

  offer(version: number, frame: Uint8Array): void {
    this.frames.set(version, frame);
    for (const v of [...this.frames.keys()].sort((a, b) => b - a).slice(KEPT_VERSIONS))
      this.frames.delete(v);
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
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const version = body.byteLength >= 8 ? view.getFloat64(0, true) : -1;
    if (!Number.isSafeInteger(version) || version < 0) return;
    switch (kind) {
      case WANT: {
        const frame = this.frames.get(version);
        if (!frame) this.write(connection, MISSING, versionBytes(version));
        else void this.serve(connection, version, frame);
        return;
      }
      case HAVE: {
        const bytes = body.byteLength >= 12 ? view.getUint32(8, true) : 0;
        if (bytes < 1 || bytes > MAX_FRAME_BYTES || !this.wanted(connection.peer, version)) return;
        connection.incoming.set(version, { bytes: new Uint8Array(bytes), filled: 0 });
        return;
      }
      case CHUNK: {
        const into = connection.incoming.get(version);
        if (!into) return;
        const chunk = body.subarray(8);
        if (into.filled + chunk.byteLength > into.bytes.byteLength) {
          connection.incoming.delete(version);
          this.fail(connection.peer, version, "badHash", `${connection.peer} sent too many bytes`);
          return;
        }
        into.bytes.set(chunk, into.filled);
        into.filled += chunk.byteLength;
        if (into.filled === into.bytes.byteLength) {
          connection.incoming.delete(version);
          this.counts.framesFetched++;
          for (const w of [...this.waiters])
            if (w.peer === connection.peer && w.version === version) w.resolve(into.bytes);
        }
        return;
      }
      case MISSING:
        this.fail(
          connection.peer,
          version,
          "missing",
          `${connection.peer} does not hold ${version}`,
        );
        return;
    }
  }

  private wanted(peer: string, version: number): boolean {
    for (const w of this.waiters) if (w.peer === peer && w.version === version) return true;
    return false;
  }

  private fail(peer: string, version: number, failure: PeerFailure, message: string): void {
    for (const w of [...this.waiters])
      if (w.peer === peer && w.version === version) w.reject(new PeerFetchError(failure, message));
  }

  /** Sends a frame in chunks, pausing while the channel's queue is full. */
  private async serve(connection: Connection, version: number, frame: Uint8Array): Promise<void> {
    const head = new Uint8Array(12);
    const view = new DataView(head.buffer);
    view.setFloat64(0, version, true);
    view.setUint32(8, frame.byteLength, true);
    this.write(connection, HAVE, head);
    for (let at = 0; at < frame.byteLength; at += CHUNK_BYTES) {
      while (connection.open && connection.sp.bufferSize > HIGH_WATER_BYTES)
        await new Promise((r) => setTimeout(r, 5));
      if (!connection.open) return;
      const chunk = frame.subarray(at, Math.min(frame.byteLength, at + CHUNK_BYTES));
      this.write(connection, CHUNK, concat(versionBytes(version), chunk));
    }
    this.counts.framesServed++;
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

function versionBytes(version: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, version, true);
  return b;
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
