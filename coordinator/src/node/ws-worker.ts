// A headless worker over a real WebSocket (the `ws` package), reconnecting with backoff and
// resuming its session after a network loss or a coordinator restart, until its run ends.
import { type Connection, connect, type SocketLike } from "@pangea/shared/client";
import { WebSocket } from "ws";
import { HeadlessWorker, type HeadlessWorkerOptions } from "../worker/headless-worker.ts";

export interface ConnectedWorker extends Connection {
  readonly worker: HeadlessWorker;
}

/** `url`: the coordinator's http(s) or ws(s) address, with or without the /ws path. */
export function connectWorker(url: string, options: HeadlessWorkerOptions = {}): ConnectedWorker {
  const worker = new HeadlessWorker(options);
  const connection = connect(url, worker, {
    // No permessage-deflate: the frames are mostly float bits, which barely compress.
    createSocket: (address) =>
      new WebSocket(address, { perMessageDeflate: false }) as unknown as SocketLike,
  });
  return Object.assign(connection, { worker });
}
