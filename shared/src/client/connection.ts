// Keeps a Contributor connected: opens a WebSocket to the coordinator's /ws, and after a network
// loss or a coordinator restart opens another with exponential backoff, resuming the session with
// its token, until the run ends. The browser's WebSocket and the `ws` package both fit SocketLike.
import type { Contributor } from "./contributor.ts";

export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type ConnectionState = "connecting" | "open" | "waiting" | "ended";

export interface Connection {
  readonly contributor: Contributor;
  state: ConnectionState;
  /** Connections opened after the first. */
  reconnects: number;
  /** Resolves when the run has ended for this contributor, or close() was called. */
  readonly done: Promise<void>;
  /** Leaves the run (its leases go back at once) and stops reconnecting. */
  close(): void;
}

/**
 * The WebSocket address of a coordinator given as http(s) or ws(s), with or without /ws. A query
 * (`?run=<id>`) is kept: the edge routes a socket to its run's Durable Object by it.
 */
export function socketUrl(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol.replace(/^http/, "ws");
  u.pathname = `${u.pathname.replace(/\/ws\/?$/, "").replace(/\/$/, "")}/ws`;
  return u.toString();
}

const OPEN = 1;

/** The run's dataset shard over HTTP, from the coordinator the contributor connects to. */
export async function fetchShard(
  coordinatorUrl: string,
  source: { name: string; url: string },
): Promise<Uint8Array> {
  const base = new URL(coordinatorUrl);
  base.protocol = base.protocol.replace(/^ws/, "http");
  const response = await fetch(new URL(source.url, base));
  if (!response.ok)
    throw new Error(`the dataset ${source.name}: ${response.status} from ${source.url}`);
  return new Uint8Array(await response.arrayBuffer());
}

export function connect(
  url: string,
  contributor: Contributor,
  options: {
    createSocket: (url: string) => SocketLike;
    onState?: (state: ConnectionState) => void;
    /** Backoff bounds in ms. */
    minBackoff?: number;
    maxBackoff?: number;
  },
): Connection {
  contributor.loadShard ??= (source) => fetchShard(url, source);
  const min = options.minBackoff ?? 250;
  const max = options.maxBackoff ?? 5000;
  let backoff = min;
  let socket: SocketLike | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const setState = (state: ConnectionState) => {
    handle.state = state;
    options.onState?.(state);
    if (state === "ended") resolveDone();
  };
  const handle: Connection = {
    contributor,
    state: "connecting",
    reconnects: -1,
    done,
    close() {
      if (handle.state === "ended") return;
      contributor.leave();
      socket?.close(1000, "left");
      setState("ended");
    },
  };
  const open = () => {
    if (handle.state === "ended") return;
    handle.reconnects++;
    setState("connecting");
    const ws = options.createSocket(socketUrl(url));
    socket = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      backoff = min;
      setState("open");
      contributor.connect((frame) => {
        if (ws.readyState === OPEN) ws.send(frame);
      });
    };
    ws.onmessage = (event) => {
      if (socket !== ws) return;
      const data = event.data;
      if (!(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data)) return;
      const frame =
        data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      contributor.receive(frame);
      if (contributor.finished) {
        ws.close(1000, "done");
        setState("ended");
      }
    };
    ws.onerror = () => {};
    ws.onclose = () => {
      if (socket !== ws) return;
      contributor.disconnect();
      if (handle.state === "ended" || contributor.finished) {
        setState("ended");
        return;
      }
      setState("waiting");
      // Jitter keeps a crowd of tabs from reconnecting in lockstep after a restart.
      setTimeout(open, backoff * (0.75 + Math.random() / 2));
      backoff = Math.min(max, backoff * 2);
    };
  };
  open();
  return handle;
}
