// A headless worker over a real WebSocket, reconnecting with backoff (and resuming its session
// with its token) after a network loss or a coordinator restart, until its run ends.
import { WebSocket } from "ws";
import { HeadlessWorker, type HeadlessWorkerOptions } from "../worker/headless-worker.ts";

export interface ConnectedWorker {
  /** The current session's worker (replaced on every reconnect, keeping the token). */
  readonly worker: HeadlessWorker;
  /** Resolves when the run has ended for this worker (finished, stopped, quarantined). */
  readonly done: Promise<void>;
  reconnects: number;
  close(): void;
}

/** `url`: the coordinator's http(s) or ws(s) address, with or without the /ws path. */
export function connectWorker(url: string, options: HeadlessWorkerOptions = {}): ConnectedWorker {
  const wsUrl = `${url
    .replace(/^http/, "ws")
    .replace(/\/ws\/?$/, "")
    .replace(/\/$/, "")}/ws`;
  let backoff = 250;
  let closed = false;
  let socket: WebSocket | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const handle: ConnectedWorker = {
    worker: new HeadlessWorker(() => {}, options),
    done,
    reconnects: -1,
    close() {
      closed = true;
      handle.worker.stop();
      socket?.terminate();
      resolveDone();
    },
  };
  const connect = () => {
    if (closed) return;
    handle.reconnects++;
    const ws = new WebSocket(wsUrl);
    socket = ws;
    const previous = handle.worker;
    const worker = new HeadlessWorker(
      (frame) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(frame);
      },
      { ...options, runId: options.runId ?? previous.runId, sessionToken: previous.sessionToken },
    );
    worker.updatesSent = previous.updatesSent;
    worker.acks = previous.acks;
    (handle as { worker: HeadlessWorker }).worker = worker;
    ws.on("open", () => {
      backoff = 250;
      worker.start();
    });
    ws.on("message", (data: Buffer) => {
      worker.receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (worker.finished) ws.close(1000, "done");
    });
    ws.on("error", () => {});
    ws.on("close", () => {
      worker.stop();
      if (worker.finished || closed) {
        closed = true;
        resolveDone();
        return;
      }
      setTimeout(connect, backoff);
      backoff = Math.min(5000, backoff * 2);
    });
  };
  connect();
  return handle;
}
