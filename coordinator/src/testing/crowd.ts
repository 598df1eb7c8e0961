// A crowd of idle sessions: raw WebSockets that join a run and heartbeat at the coordinator's
// `heartbeatMs` but never ask for work, as tabs left open between leases do. The coordinator
// bench holds 10,000 of them on one process; the dashboard's paging spec a hundred or so.
import { decodeMessage, encodeMessage, PROTOCOL_VERSION, type WireMessage } from "@pangea/shared";
import { WebSocket } from "ws";

export interface Crowd {
  sockets: WebSocket[];
  /** Closes the first `n` sessions (all when absent) and stops their heartbeats. */
  close(n?: number): void;
}

export interface CrowdOptions {
  /** Each heartbeat's round trip, in ms, as its session measured it. */
  onRoundTrip?: (ms: number) => void;
  /** Joins opened at once (the rest wait for them). */
  batch?: number;
}

const frame = (payload: WireMessage["payload"]) =>
  encodeMessage({ messageId: "", sender: "", recipient: "coordinator", timestamp: 0, payload });

/** Opens `count` sessions on `url`'s run `runId`, each joined (welcomed) before this resolves. */
export async function openCrowd(
  url: string,
  runId: string,
  count: number,
  options: CrowdOptions = {},
): Promise<Crowd> {
  const sockets: WebSocket[] = [];
  const timers = new Map<WebSocket, ReturnType<typeof setTimeout>>();
  const join = frame({
    type: "join",
    runId,
    sessionToken: "",
    client: { kind: "crowd", adapter: "", softwareFallback: true, userAgent: "" },
    encodings: ["fp32"],
    protocolVersion: PROTOCOL_VERSION,
  });
  const open = () =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, "ws")}/ws`);
      sockets.push(ws);
      let sentAt = 0;
      ws.once("error", reject);
      ws.on("open", () => ws.send(join));
      ws.on("message", (data: Buffer) => {
        const d = decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        if (!d.ok) return;
        const p = d.message.payload;
        if (p.type === "welcome") {
          const beat = () => {
            if (ws.readyState !== ws.OPEN) return;
            sentAt = performance.now();
            ws.send(frame({ type: "heartbeat", sentAt: Date.now(), samplesPerSecond: 0 }));
            timers.set(ws, setTimeout(beat, p.heartbeatMs));
          };
          // A random phase, as tabs opened at different times have.
          timers.set(ws, setTimeout(beat, Math.random() * p.heartbeatMs));
          resolve();
        } else if (p.type === "heartbeat" && sentAt > 0) {
          options.onRoundTrip?.(performance.now() - sentAt);
        } else if (p.type === "error")
          reject(new Error(`a crowd session was refused: ${p.message}`));
      });
    });
  const batch = options.batch ?? 250;
  for (let i = 0; i < count; i += batch)
    await Promise.all(Array.from({ length: Math.min(batch, count - i) }, open));
  let closed = 0;
  return {
    sockets,
    close(n = sockets.length) {
      for (const ws of sockets.slice(closed, closed + n)) {
        clearTimeout(timers.get(ws));
        ws.terminate();
      }
      closed += n;
    },
  };
}
