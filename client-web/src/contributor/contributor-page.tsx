// The contributor page: what happens, one button, and then what this tab is doing for the run.
// Training happens in training.worker.ts; this thread only draws.
import { useEffect, useRef, useState } from "react";
import { LineChart } from "../ui/chart.tsx";
import { number, percent } from "../ui/format.ts";
import { type LeaderboardRow, useRunEvents } from "../ui/run-events.ts";
import { PagePeers, webRtcAvailable } from "./page-peers.ts";
import type { AdapterInfo, FromWorker, ToWorker } from "./worker-protocol.ts";

const NO_WEBGPU =
  "This browser cannot contribute: it has no WebGPU. Chrome or Edge 113 or newer (Windows, macOS, ChromeOS), Chrome 121+ on Android, or Safari 26+ would work.";

type Support = "checking" | "yes" | { message: string };

const NAME_KEY = "pangea.displayName";

/** The run's contributors as the coordinator credits them: a chosen name and samples, no more. */
function Leaderboard(props: { rows: LeaderboardRow[]; you: string }) {
  return (
    <div>
      <h3>Leaderboard</h3>
      <table data-testid="leaderboard">
        <thead>
          <tr>
            <th>#</th>
            <th>Contributor</th>
            <th>Samples</th>
            <th>Verified by redundancy</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.slice(0, 20).map((row, i) => (
            <tr key={row.id} data-session={row.id} className={row.id === props.you ? "you" : ""}>
              <td>{i + 1}</td>
              <td>
                {row.name || "anonymous"}
                {row.id === props.you ? " (this tab)" : ""}
              </td>
              <td data-testid="leader-samples">{number(row.samples)}</td>
              <td>{number(row.verified)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

async function detectWebGpu(): Promise<Support> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return { message: NO_WEBGPU };
  try {
    const adapter = await gpu.requestAdapter();
    return adapter ? "yes" : { message: `${NO_WEBGPU} (WebGPU is there, but it offered no GPU.)` };
  } catch {
    return { message: NO_WEBGPU };
  }
}

interface TabStats {
  batchesDone: number;
  samplesDone: number;
  samplesPerSecond: number;
  acks: number;
  refusals: number;
}

export function ContributorPage() {
  const [support, setSupport] = useState<Support>("checking");
  const [started, setStarted] = useState(false);
  const [adapter, setAdapter] = useState<AdapterInfo | null>(null);
  const [connection, setConnection] = useState("not connected");
  const [runId, setRunId] = useState<string>();
  const [sessionId, setSessionId] = useState("");
  const [stats, setStats] = useState<TabStats | null>(null);
  const [losses, setLosses] = useState<{ x: number[]; y: number[] }>({ x: [], y: [] });
  const [paused, setPaused] = useState(false);
  const [duty, setDuty] = useState(100);
  const [notice, setNotice] = useState("");
  const [failure, setFailure] = useState("");
  // The leaderboard name, kept in this browser only (nothing else about the visitor is sent).
  const [name, setName] = useState(() => localStorage.getItem(NAME_KEY) ?? "");
  const worker = useRef<Worker | null>(null);
  const peers = useRef<PagePeers | null>(null);
  const [peerCount, setPeerCount] = useState(0);
  const { status } = useRunEvents(runId);

  useEffect(() => {
    if (!started) return;
    const timer = setInterval(() => setPeerCount(peers.current?.stats().connected ?? 0), 1000);
    return () => clearInterval(timer);
  }, [started]);

  useEffect(() => {
    detectWebGpu().then(setSupport);
  }, []);

  useEffect(() => {
    // A clean leave: the worker says goodbye so the tab's leases go back at once.
    const leave = () => worker.current?.postMessage({ type: "leave" } satisfies ToWorker);
    window.addEventListener("pagehide", leave);
    return () => window.removeEventListener("pagehide", leave);
  }, []);

  const send = (m: ToWorker) => worker.current?.postMessage(m);

  const start = () => {
    const w = new Worker(new URL("./training.worker.ts", import.meta.url), { type: "module" });
    worker.current = w;
    const withPeers = webRtcAvailable();
    if (withPeers) peers.current = new PagePeers((m) => w.postMessage(m satisfies ToWorker));
    w.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      if (peers.current?.handle(m)) return;
      switch (m.type) {
        case "adapter":
          setAdapter(m.adapter);
          return;
        case "unsupported":
          setSupport({ message: m.message });
          return;
        case "connection":
          setConnection(
            m.state === "waiting" ? "reconnecting…" : m.state === "open" ? "connected" : m.state,
          );
          return;
        case "joined":
          setRunId(m.runId);
          setSessionId(m.sessionId);
          setNotice("");
          return;
        case "work":
          setStats(m);
          setNotice("");
          setLosses((old) => {
            const x = [...old.x, m.batchesDone].slice(-500);
            const y = [...old.y, m.loss].slice(-500);
            return { x, y };
          });
          return;
        case "paused":
          setPaused(m.paused);
          return;
        case "notice":
          setNotice(m.message);
          return;
        case "ended":
          setNotice(m.message);
          setConnection("ended");
          return;
        case "error":
          setFailure(m.message);
          return;
      }
    };
    const wanted = new URLSearchParams(location.search).get("run") ?? "";
    localStorage.setItem(NAME_KEY, name.trim());
    send({
      type: "start",
      url: location.origin,
      runId: wanted,
      displayName: name.trim(),
      peers: withPeers,
    });
    setStarted(true);
  };

  // This tab's share of the run: its credited samples among all samples the run committed, both
  // as the coordinator counts them (not the tab's own count, which runs ahead of what was committed).
  const mine = status?.leaderboard.find((row) => row.id === sessionId);
  const share =
    mine && status && status.counters.samples > 0 ? mine.samples / status.counters.samples : null;

  return (
    <main className="page contributor">
      <h1>Pangea</h1>
      <p className="lede">
        Lend this tab's GPU to train a neural network together with other volunteers.
        <br />
        Your tab trains on small batches of data and sends back only what it learned; close the tab
        at any moment.
      </p>
      {support === "checking" && <p>Checking this browser for WebGPU…</p>}
      {typeof support === "object" && (
        <p className="unsupported" role="alert" data-testid="unsupported">
          {support.message}
        </p>
      )}
      {support === "yes" && !started && (
        <div className="controls">
          <label>
            Name on the leaderboard (optional)
            <input
              value={name}
              maxLength={32}
              placeholder="anonymous"
              onChange={(e) => setName(e.target.value)}
              data-testid="display-name"
            />
          </label>
          <button type="button" className="primary" onClick={start} data-testid="start">
            Start contributing
          </button>
        </div>
      )}
      {started && support === "yes" && (
        <section className="panel" data-testid="contributing" data-session={sessionId}>
          <dl className="facts">
            <dt>GPU</dt>
            <dd data-testid="adapter">
              {adapter ? adapter.description : "starting…"}
              {adapter?.softwareFallback && (
                <span className="warning"> (a software fallback: it works, slowly)</span>
              )}
            </dd>
            <dt>Run</dt>
            <dd data-testid="run">
              {status ? `${status.name} (${status.id})` : (runId ?? "joining…")}
            </dd>
            <dt>Connection</dt>
            <dd data-testid="connection">{connection}</dd>
            {status?.config.peers && (
              <>
                <dt>Peers</dt>
                <dd data-testid="peers">{peerCount} other tabs connected over WebRTC</dd>
              </>
            )}
            <dt>Batches done</dt>
            <dd data-testid="batches">{stats?.batchesDone ?? 0}</dd>
            <dt>Samples/s</dt>
            <dd data-testid="speed">{number(stats?.samplesPerSecond ?? 0)}</dd>
            <dt>This tab's share</dt>
            <dd data-testid="share">{percent(share)}</dd>
            {status?.config.model.transformer ? (
              <>
                <dt>Run validation loss</dt>
                <dd data-testid="validation-loss">
                  {status.evaluation
                    ? `${status.evaluation.loss.toFixed(3)} nats per character at version ${status.evaluation.version}`
                    : "not evaluated yet"}
                </dd>
              </>
            ) : (
              <>
                <dt>Run accuracy</dt>
                <dd data-testid="accuracy">
                  {status?.evaluation
                    ? `${percent(status.evaluation.accuracy)} at version ${status.evaluation.version}`
                    : "not evaluated yet"}
                </dd>
              </>
            )}
          </dl>
          {status?.evaluation?.sample !== undefined && (
            <div>
              <h3>What the run writes now (version {status.evaluation.version})</h3>
              <pre className="sample" data-testid="sample">
                {status.evaluation.sample}
              </pre>
            </div>
          )}
          <div className="controls">
            <button
              type="button"
              data-testid="pause"
              onClick={() => send({ type: paused ? "resume" : "pause" })}
            >
              {paused ? "Resume" : "Pause"}
            </button>
            <label>
              GPU use {duty}%
              <input
                type="range"
                min={10}
                max={100}
                step={10}
                value={duty}
                data-testid="throttle"
                onChange={(e) => {
                  const v = Number(e.target.value);
                  setDuty(v);
                  send({ type: "duty", value: v / 100 });
                }}
              />
            </label>
          </div>
          {status && status.state !== "running" && (
            <p className="notice" data-testid="run-state">
              {status.state === "paused"
                ? "The run is paused by its researcher: this tab waits and goes on when it resumes."
                : `The run is ${status.state}: there is nothing to train.`}
            </p>
          )}
          {notice && status?.state === "running" && <p className="notice">{notice}</p>}
          {failure && (
            <p className="unsupported" role="alert">
              {failure}
            </p>
          )}
          {status && status.leaderboard.length > 0 && (
            <Leaderboard rows={status.leaderboard} you={sessionId} />
          )}
          <LineChart
            title="This tab's training loss"
            xLabel="batch"
            x={losses.x}
            series={[{ label: "loss", values: losses.y, color: "#c2410c" }]}
            testId="loss-chart"
          />
        </section>
      )}
    </main>
  );
}
