// The admin dashboard: sign in with the admin token, the runs table, a create-run form, and a
// run page with live charts, the workers table and the run's controls. Everything live comes
// from server-sent events; nothing polls.
import { gptSpec, mlpSpec } from "@pangea/shared";
import { type FormEvent, useEffect, useRef, useState } from "react";
import { LineChart } from "../ui/chart.tsx";
import { ago, bytes, number, percent } from "../ui/format.ts";
import {
  type RunStatus,
  useRunEvents,
  type WorkersPage,
  type WorkersShow,
} from "../ui/run-events.ts";
import { ApiError, api, downloadCheckpoint, token } from "./api.ts";
import { type DatasetRecord, DatasetsPanel, describe, useDatasets } from "./datasets.tsx";

type RunSummary = Omit<RunStatus, "workers" | "config" | "leaderboard" | "contributors"> & {
  model: string;
  dataset: string;
  strategy: string;
  workers: number;
};

function useRoute(): [string | null, (runId: string | null) => void] {
  const read = () => new URLSearchParams(location.search).get("run");
  const [runId, setRunId] = useState(read);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `read` only reads location
  useEffect(() => {
    const back = () => setRunId(read());
    window.addEventListener("popstate", back);
    return () => window.removeEventListener("popstate", back);
  }, []);
  const go = (id: string | null) => {
    history.pushState(null, "", id ? `/admin?run=${encodeURIComponent(id)}` : "/admin");
    setRunId(id);
  };
  return [runId, go];
}

export function AdminApp() {
  const [signedIn, setSignedIn] = useState(token.get() !== "");
  const [runId, go] = useRoute();
  if (!signedIn) return <SignIn onDone={() => setSignedIn(true)} />;
  return (
    <main className="page admin">
      <header className="bar">
        <h1>
          <a
            href="/admin"
            onClick={(e) => {
              e.preventDefault();
              go(null);
            }}
          >
            Pangea runs
          </a>
        </h1>
        <button
          type="button"
          onClick={() => {
            token.clear();
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      {runId ? <RunPage runId={runId} /> : <RunsPage open={go} />}
    </main>
  );
}

function SignIn(props: { onDone: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    token.set(value.trim());
    try {
      await api("/api/admin/check");
      props.onDone();
    } catch (err) {
      token.clear();
      setError(
        err instanceof ApiError && err.status === 401
          ? "That token is not the admin token. The coordinator printed it once at first start; it is also in its data directory (admin-token)."
          : `The coordinator could not be reached: ${err}`,
      );
    }
  };
  return (
    <main className="page admin">
      <h1>Pangea runs</h1>
      <form className="panel signin" onSubmit={submit}>
        <label>
          Admin token
          <input
            type="password"
            autoComplete="current-password"
            value={value}
            onChange={(e) => setValue(e.target.value)}
            data-testid="token"
          />
        </label>
        <button type="submit" className="primary" data-testid="sign-in">
          Sign in
        </button>
        {error && (
          <p className="unsupported" role="alert">
            {error}
          </p>
        )}
        <p className="hint">Kept for this browser session only.</p>
      </form>
    </main>
  );
}

function RunsPage(props: { open: (id: string) => void }) {
  const [runs, setRuns] = useState<RunSummary[] | null>(null);
  const [datasets, reloadDatasets] = useDatasets();
  useEffect(() => {
    const source = new EventSource("/api/events");
    source.addEventListener("runs", (e) =>
      setRuns((JSON.parse((e as MessageEvent<string>).data) as { runs: RunSummary[] }).runs),
    );
    return () => source.close();
  }, []);
  return (
    <>
      <section className="panel">
        <h2>Runs</h2>
        {runs === null ? (
          <p>Loading…</p>
        ) : runs.length === 0 ? (
          <p>No runs yet: create one below.</p>
        ) : (
          <table data-testid="runs">
            <thead>
              <tr>
                <th>Name</th>
                <th>State</th>
                <th>Model / data</th>
                <th>Strategy</th>
                <th>Version</th>
                <th>Epoch</th>
                <th>Accuracy</th>
                <th>Workers</th>
              </tr>
            </thead>
            <tbody>
              {[...runs]
                .sort((a, b) => b.id.localeCompare(a.id))
                .map((r) => (
                  <tr key={r.id} data-run={r.id}>
                    <td>
                      <a
                        href={`/admin?run=${r.id}`}
                        onClick={(e) => {
                          e.preventDefault();
                          props.open(r.id);
                        }}
                      >
                        {r.name}
                      </a>
                    </td>
                    <td className={`state ${r.state}`}>{r.state}</td>
                    <td>
                      {r.model} / {r.dataset}
                    </td>
                    <td>{r.strategy}</td>
                    <td>{r.version}</td>
                    <td>{r.epoch}</td>
                    <td>{percent(r.evaluation?.accuracy)}</td>
                    <td>{r.workers}</td>
                  </tr>
                ))}
            </tbody>
          </table>
        )}
      </section>
      <CreateRun onCreated={props.open} datasets={datasets} />
      <DatasetsPanel datasets={datasets} onAdded={reloadDatasets} />
    </>
  );
}

type Gpt = { layers: number; heads: number; width: number; contextLength: number };
const MODELS: Record<string, { label: string; sizes?: number[]; gpt?: Gpt }> = {
  "mnist-mlp-784-128-10": { label: "MLP 784-128-10 (MNIST)", sizes: [784, 128, 10] },
  "mnist-mlp-784-256-10": { label: "MLP 784-256-10 (MNIST)", sizes: [784, 256, 10] },
  "mnist-mlp-784-256-128-10": { label: "MLP 784-256-128-10 (MNIST)", sizes: [784, 256, 128, 10] },
  "gpt-2x64": {
    label: "GPT 2 layers × 64, 4 heads, context 64 (text, 0.1M)",
    gpt: { layers: 2, heads: 4, width: 64, contextLength: 64 },
  },
  "gpt-4x128": {
    label: "GPT 4 layers × 128, 4 heads, context 128 (text, 0.8M)",
    gpt: { layers: 4, heads: 4, width: 128, contextLength: 128 },
  },
  "gpt-6x384": {
    label: "GPT 6 layers × 384, 6 heads, context 256 (nanoGPT's, 10.7M)",
    gpt: { layers: 6, heads: 6, width: 384, contextLength: 256 },
  },
};
/** Characters in the text datasets' vocabulary (Tiny Shakespeare's 65). */
const TEXT_VOCABULARY = 65;

const MNIST_FORM = {
  name: "MNIST",
  model: "mnist-mlp-784-128-10",
  dataset: "mnist",
  strategy: "asynchronous",
  targetUpdates: "4",
  stragglerMs: "10000",
  maxStaleness: "8",
  buffer: "1",
  innerSteps: "8",
  optimizer: "adamw",
  learningRate: "0.001",
  batchSize: "64",
  // A demo's versions hold one to a few updates, too few for a robust rule to out-vote anyone;
  // with many strangers per version, CenteredClip with buckets of 2 is the recommendation.
  aggregation: "mean",
  trim: "0.2",
  clipNorm: "0",
  bucket: "2",
  radius: "0",
  iterations: "3",
  targetAccuracy: "0.95",
  targetLoss: "0",
  epochs: "50",
  versions: "0",
  evaluateBy: "coordinator",
  peers: "off",
  reduceGroup: "0",
};
/** The second preset: the Shakespeare GPT, synchronous data parallel (one click). */
const GPT_FORM: typeof MNIST_FORM = {
  ...MNIST_FORM,
  name: "Shakespeare GPT",
  model: "gpt-2x64",
  dataset: "shakespeare",
  strategy: "synchronous",
  targetUpdates: "3",
  stragglerMs: "15000",
  learningRate: "0.003",
  batchSize: "16",
  // Each update clipped to norm 1 before the mean: without it this GPT took about 1.5× the
  // samples to reach 2.5 nats (CPU reference, 3 updates of 8 windows per version).
  clipNorm: "1",
  targetAccuracy: "0",
  targetLoss: "2.45",
  epochs: "0",
  versions: "3000",
};

function CreateRun(props: { onCreated: (id: string) => void; datasets: DatasetRecord[] }) {
  const [f, setF] = useState(MNIST_FORM);
  const [checkpoint, setCheckpoint] = useState<File | undefined>();
  const [problems, setProblems] = useState<string[]>([]);
  const set = (key: keyof typeof f) => (e: { target: { value: string } }) =>
    setF({ ...f, [key]: e.target.value });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const num = (key: keyof typeof f) => Number(f[key]);
    const local: string[] = [];
    for (const key of [
      "learningRate",
      "batchSize",
      "targetAccuracy",
      "targetLoss",
      "epochs",
      "versions",
      "trim",
      "clipNorm",
      "bucket",
      "radius",
      "iterations",
    ] as const)
      if (f[key].trim() === "" || !Number.isFinite(num(key))) local.push(`${key} must be a number`);
    if (local.length > 0) {
      setProblems(local);
      return;
    }
    const strategy =
      f.strategy === "asynchronous"
        ? { kind: "asynchronous", maxStaleness: num("maxStaleness"), buffer: num("buffer") }
        : f.strategy === "localSgd"
          ? {
              kind: "localSgd",
              innerSteps: num("innerSteps"),
              targetUpdates: num("targetUpdates"),
              stragglerMs: num("stragglerMs"),
            }
          : {
              kind: "synchronous",
              targetUpdates: num("targetUpdates"),
              stragglerMs: num("stragglerMs"),
            };
    const model = MODELS[f.model]!;
    // A brought dataset shapes the model's ends: the text's vocabulary, or the images' width
    // and classes (the preset's hidden layers stay).
    const data = props.datasets.find((d) => d.name === f.dataset);
    const sizes =
      data?.kind === "images" && !data.builtIn
        ? [data.width!, ...model.sizes!.slice(1, -1), data.classes!]
        : model.sizes!;
    const body = {
      name: f.name,
      model: model.gpt
        ? gptSpec(
            { ...model.gpt, vocabSize: data?.vocabulary ?? TEXT_VOCABULARY },
            { name: f.model },
          )
        : mlpSpec(sizes, { name: sizes === model.sizes ? f.model : `mlp-${sizes.join("-")}` }),
      dataset: f.dataset,
      batchSize: num("batchSize"),
      strategy,
      optimizer: {
        kind: f.optimizer,
        learningRate: num("learningRate"),
        ...(model.gpt ? { warmupVersions: 20, weightDecay: 0.1, beta2: 0.99 } : {}),
      },
      aggregation: {
        kind: f.aggregation,
        trim: num("trim"),
        clipNorm: num("clipNorm"),
        // Buckets feed the robust rules only; the mean takes every update as it is.
        bucket: f.aggregation === "mean" ? 0 : num("bucket"),
        radius: num("radius"),
        iterations: num("iterations"),
      },
      // A language model warms up and evaluates less often (each evaluation is seconds of CPU).
      ...(model.gpt ? { evaluateEvery: 25 } : {}),
      evaluateBy: f.evaluateBy,
      peers: f.peers === "on",
      reduceGroup: num("reduceGroup"),
      stop: {
        targetAccuracy: num("targetAccuracy"),
        targetLoss: num("targetLoss"),
        epochs: num("epochs"),
        versions: num("versions"),
      },
    };
    try {
      // From a checkpoint: the config and the file together, as a form.
      let request: BodyInit = JSON.stringify(body);
      if (checkpoint) {
        const form = new FormData();
        form.set("config", JSON.stringify(body));
        form.set("checkpoint", checkpoint, checkpoint.name);
        request = form;
      }
      const run = await api<{ id: string }>("/api/runs", { method: "POST", body: request });
      setProblems([]);
      props.onCreated(run.id);
    } catch (err) {
      setProblems(
        err instanceof ApiError && err.problems.length > 0 ? err.problems : [String(err)],
      );
    }
  };
  const field = (key: keyof typeof f, label: string, hint = "") => (
    <label>
      {label}
      <input value={f[key]} onChange={set(key)} name={key} data-testid={`field-${key}`} />
      {hint && <small>{hint}</small>}
    </label>
  );
  return (
    <form className="panel create" onSubmit={submit} data-testid="create-run">
      <h2>New run</h2>
      <div className="controls">
        Presets:{" "}
        <button type="button" onClick={() => setF(MNIST_FORM)} data-testid="preset-mnist">
          MNIST MLP
        </button>
        <button type="button" onClick={() => setF(GPT_FORM)} data-testid="preset-gpt">
          Shakespeare GPT
        </button>
      </div>
      <div className="grid">
        {field("name", "Name")}
        <label>
          Model
          <select value={f.model} onChange={set("model")} data-testid="field-model">
            {Object.entries(MODELS).map(([k, m]) => (
              <option key={k} value={k}>
                {m.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Dataset
          <select value={f.dataset} onChange={set("dataset")} data-testid="field-dataset">
            {props.datasets.length === 0 && (
              <>
                <option value="mnist">mnist</option>
                <option value="shakespeare">shakespeare</option>
              </>
            )}
            {props.datasets.map((d) => (
              <option key={d.name} value={d.name}>
                {d.name} ({describe(d)})
              </option>
            ))}
          </select>
        </label>
        <label>
          Strategy
          <select value={f.strategy} onChange={set("strategy")} data-testid="field-strategy">
            <option value="asynchronous">asynchronous, bounded staleness</option>
            <option value="synchronous">synchronous</option>
            <option value="localSgd">local SGD / DiLoCo</option>
          </select>
        </label>
        {f.strategy === "asynchronous" && (
          <>
            {field("maxStaleness", "Max staleness (versions)")}
            {field("buffer", "Updates per version")}
          </>
        )}
        {f.strategy !== "asynchronous" && (
          <>
            {field("targetUpdates", "Updates per version")}
            {field("stragglerMs", "Straggler deadline (ms)")}
          </>
        )}
        {f.strategy === "localSgd" && field("innerSteps", "Inner steps (H)")}
        <label>
          Optimizer
          <select value={f.optimizer} onChange={set("optimizer")} data-testid="field-optimizer">
            <option value="adamw">AdamW</option>
            <option value="sgd">SGD with momentum</option>
          </select>
        </label>
        {field("learningRate", "Learning rate")}
        {field("batchSize", "Batch size")}
        <label>
          Aggregation
          <select
            value={f.aggregation}
            onChange={set("aggregation")}
            data-testid="field-aggregation"
          >
            <option value="mean">mean</option>
            <option value="trimmedMean">trimmed mean</option>
            <option value="median">coordinate-wise median</option>
            <option value="centeredClip">CenteredClip (recommended with strangers)</option>
          </select>
        </label>
        {f.aggregation === "trimmedMean" && field("trim", "Trim (fraction per end)")}
        {f.aggregation !== "mean" &&
          field("bucket", "Buckets of", "updates averaged before the rule; 2 recommended, 0 = off")}
        {f.aggregation === "centeredClip" && (
          <>
            {field("radius", "Clipping radius", "0 = the median distance")}
            {field("iterations", "Iterations")}
          </>
        )}
        {field("clipNorm", "Clip norm", "0 = off")}
        {field("targetAccuracy", "Stop at accuracy", "0 = never")}
        {field("targetLoss", "or at validation loss (nats)", "0 = never")}
        {field("epochs", "or after epochs", "0 = no limit")}
        {field("versions", "or after versions", "0 = no limit")}
        <label>
          Start from a checkpoint
          <input
            type="file"
            accept=".safetensors,.capnp"
            onChange={(e) => setCheckpoint(e.target.files?.[0])}
            data-testid="field-checkpoint"
          />
          <small>safetensors or Cap'n Proto; empty = a fresh model</small>
        </label>
        <label>
          Evaluated by
          <select value={f.evaluateBy} onChange={set("evaluateBy")} data-testid="field-evaluateBy">
            <option value="coordinator">the coordinator (off its event loop)</option>
            <option value="contributors">contributors (each part by two, compared)</option>
          </select>
        </label>
        <label>
          Parameters
          <select value={f.peers} onChange={set("peers")} data-testid="field-peers">
            <option value="off">from the coordinator</option>
            <option value="on">from peers over WebRTC (hash-checked)</option>
          </select>
          <small>peers help most when a version has several updates (synchronous, local SGD)</small>
        </label>
        {field(
          "reduceGroup",
          "Reduce updates among peers, in groups of",
          "0: each update to the coordinator; 2 to 16: groups reduce theirs over WebRTC (needs peers, a mean, trimmed mean or median)",
        )}
      </div>
      {problems.length > 0 && (
        <ul className="problems" role="alert" data-testid="problems">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      <button type="submit" className="primary" data-testid="create">
        Create and start
      </button>
    </form>
  );
}

/** Who measured the evaluation, in words: contributors, or the coordinator and how it ran. */
function evaluatedBy(where: string | undefined): string {
  if (where?.startsWith("by ")) return where.slice(3);
  return where ? `the coordinator, ${where}` : "the coordinator";
}

/** Nats to bits, as language-model papers report loss per character. */
const bits = (nats: number) => (nats / Math.LN2).toFixed(3);

/** Rows per page of the workers table. */
const WORKERS_PER_PAGE = 50;

/**
 * A page of the sessions' rows, which only the admin sees (the public stream shows the
 * leaderboard alone), and the whole crowd's summary: fetched with the token when the live status
 * changes or the page is turned, at most once a second. A run may have thousands of sessions;
 * one page of them is what is fetched and drawn.
 */
function useAdminWorkers(
  runId: string,
  key: string,
  show: WorkersShow,
  offset: number,
): WorkersPage | undefined {
  const [page, setPage] = useState<WorkersPage>();
  const last = useRef(0);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` is the trigger (the live status changed)
  useEffect(() => {
    const wait = Math.max(0, last.current + 1000 - Date.now());
    const timer = setTimeout(() => {
      last.current = Date.now();
      const query = `show=${show}&offset=${offset}&limit=${WORKERS_PER_PAGE}`;
      api<WorkersPage>(`/api/runs/${encodeURIComponent(runId)}/workers?${query}`)
        .then(setPage)
        .catch(() => {});
    }, wait);
    return () => clearTimeout(timer);
  }, [runId, key, show, offset]);
  return page;
}

function RunPage(props: { runId: string }) {
  const { status, points, live } = useRunEvents(props.runId);
  const [error, setError] = useState("");
  const [show, setShow] = useState<WorkersShow>("all");
  const [offset, setOffset] = useState(0);
  const page = useAdminWorkers(
    props.runId,
    status
      ? `${status.version}:${status.contributors.connected}:${status.counters.updatesAccepted}:${status.state}`
      : "",
    show,
    offset,
  );
  const workers = page?.workers ?? [];
  if (!status) return <p>Loading run {props.runId}…</p>;
  const act = async (action: "pause" | "resume" | "stop") => {
    try {
      await api(`/api/runs/${status.id}/${action}`, { method: "POST" });
      setError("");
    } catch (e) {
      setError(String(e instanceof Error ? e.message : e));
    }
  };
  const evaluated = points.filter((p) => p.testAccuracy !== undefined);
  const text = status.config.model.transformer !== undefined;
  const refused = Object.entries(status.counters.updatesRefused);
  const ended = status.state === "stopped" || status.state === "finished";
  return (
    <section data-testid="run-page" data-state={status.state}>
      <div className="panel">
        <h2>
          {status.name} <span className={`state ${status.state}`}>{status.state}</span>{" "}
          <small>{live ? "live" : "reconnecting…"}</small>
        </h2>
        <dl className="facts">
          <dt>Run</dt>
          <dd>{status.id}</dd>
          <dt>Version</dt>
          <dd data-testid="version">{status.version}</dd>
          <dt>Epoch</dt>
          <dd>
            {status.epoch} ({status.batchesDone} of {status.batchesPerEpoch} batches)
          </dd>
          {text ? (
            <>
              <dt>Validation loss</dt>
              <dd data-testid="validation-loss">
                {status.evaluation
                  ? `${status.evaluation.loss.toFixed(3)} nats (${bits(status.evaluation.loss)} bits) per character, version ${status.evaluation.version}`
                  : "not evaluated yet"}
              </dd>
            </>
          ) : (
            <>
              <dt>Test accuracy</dt>
              <dd data-testid="accuracy">
                {status.evaluation
                  ? `${percent(status.evaluation.accuracy)} (loss ${status.evaluation.loss.toFixed(4)}, version ${status.evaluation.version})`
                  : "not evaluated yet"}
              </dd>
            </>
          )}
          <dt>Evaluated by</dt>
          <dd data-testid="evaluated-by">
            {evaluatedBy(status.evaluation?.where)}
            {status.evaluation?.measured ? `, on ${status.evaluation.measured}` : ""}
          </dd>
          <dt>Samples</dt>
          <dd>{number(status.counters.samples)}</dd>
          <dt>Leases</dt>
          <dd>
            {status.liveLeases} live, {status.counters.leaseReissues} reissued
          </dd>
          <dt>Updates</dt>
          <dd data-testid="updates">
            {status.counters.updatesAccepted} accepted
            {refused.length > 0 && `; refused: ${refused.map(([k, v]) => `${k} ${v}`).join(", ")}`}
            {(status.config.reduceGroup ?? 0) >= 2 && (
              <span data-testid="reduce-groups">
                ; reduced among peers in groups of {status.config.reduceGroup}:{" "}
                {status.counters.groupsReduced ?? 0} taken, {status.counters.groupFallbacks ?? 0}{" "}
                fell back
              </span>
            )}
          </dd>
          {status.traffic && (
            <>
              <dt>Traffic</dt>
              <dd data-testid="traffic">
                through the coordinator {bytes(status.traffic.bytesIn)} in,{" "}
                {bytes(status.traffic.bytesOut)} out
                {status.config.peers && (
                  <>
                    ; between peers{" "}
                    <span data-testid="peer-bytes">{bytes(status.traffic.peerBytes)}</span>
                  </>
                )}
                {status.traffic.samples > 0 &&
                  ` (${bytes((status.traffic.bytesIn + status.traffic.bytesOut) / status.traffic.samples)} per sample through the coordinator)`}
              </dd>
            </>
          )}
        </dl>
        <div className="controls">
          {status.state === "running" && (
            <button type="button" onClick={() => act("pause")} data-testid="pause-run">
              Pause
            </button>
          )}
          {status.state === "paused" && (
            <button type="button" onClick={() => act("resume")} data-testid="resume-run">
              Resume
            </button>
          )}
          {!ended && (
            <button type="button" onClick={() => act("stop")} data-testid="stop-run">
              Stop
            </button>
          )}
          <button
            type="button"
            onClick={() => downloadCheckpoint(status.id).catch((e) => setError(String(e)))}
            data-testid="checkpoint"
          >
            Download checkpoint
          </button>
          <button
            type="button"
            onClick={() =>
              downloadCheckpoint(status.id, "safetensors").catch((e) => setError(String(e)))
            }
            data-testid="checkpoint-safetensors"
            title="For PyTorch, JAX, candle, Transformers.js"
          >
            Download safetensors
          </button>
        </div>
        {error && (
          <p className="unsupported" role="alert">
            {error}
          </p>
        )}
      </div>
      {text && status.evaluation?.sample !== undefined && (
        <div className="panel">
          <h3>Sample from version {status.evaluation.version}</h3>
          <pre className="sample" data-testid="sample">
            {status.evaluation.sample}
          </pre>
        </div>
      )}
      <div className="charts">
        <LineChart
          title="Test accuracy (the coordinator's evaluation)"
          xLabel="version"
          x={evaluated.map((p) => p.version)}
          series={[
            {
              label: "accuracy",
              values: evaluated.map((p) => p.testAccuracy ?? null),
              color: "#15803d",
            },
          ]}
          testId="accuracy-chart"
        />
        <LineChart
          title="Loss"
          xLabel="version"
          x={points.map((p) => p.version)}
          series={[
            {
              label: "train (workers' claim)",
              values: points.map((p) => p.trainLoss),
              color: "#c2410c",
            },
            {
              label: "test",
              values: points.map((p) => p.testLoss ?? null),
              color: "#1d4ed8",
            },
          ]}
        />
        <LineChart
          title="Throughput and workers"
          xLabel="version"
          x={points.map((p) => p.version)}
          series={[
            {
              label: "samples/s",
              values: points.map((p) => p.samplesPerSecond),
              color: "#7c3aed",
            },
            {
              label: "workers",
              values: points.map((p) => p.workers),
              color: "#0f766e",
              scale: "w",
            },
          ]}
        />
      </div>
      <div className="panel">
        <h2>
          Workers{" "}
          <small data-testid="workers-summary">
            {status.contributors.connected} connected of {status.contributors.total}
            {page
              ? ` · ${page.summary.quarantined} quarantined · ${number(page.summary.samplesPerSecond)} samples/s in all`
              : ""}
          </small>
        </h2>
        <div className="pager">
          <label>
            Show{" "}
            <select
              data-testid="workers-show"
              value={show}
              onChange={(e) => {
                setShow(e.currentTarget.value as WorkersShow);
                setOffset(0);
              }}
            >
              <option value="all">all</option>
              <option value="connected">connected</option>
              <option value="quarantined">quarantined</option>
            </select>
          </label>{" "}
          <button
            type="button"
            disabled={offset === 0}
            onClick={() => setOffset(Math.max(0, offset - WORKERS_PER_PAGE))}
          >
            Previous
          </button>{" "}
          <span data-testid="workers-range">
            {page && page.matching > 0
              ? `${page.offset + 1}–${page.offset + page.workers.length} of ${page.matching}`
              : "none"}
          </span>{" "}
          <button
            type="button"
            disabled={!page || offset + WORKERS_PER_PAGE >= page.matching}
            onClick={() => setOffset(offset + WORKERS_PER_PAGE)}
          >
            Next
          </button>
        </div>
        <table data-testid="workers">
          <thead>
            <tr>
              <th>Session</th>
              <th>Name</th>
              <th>Adapter</th>
              <th>Samples/s</th>
              <th>Accepted</th>
              <th>Refused</th>
              <th>Credit (verified)</th>
              <th>Bytes in / out</th>
              <th>Peers (fetched / served)</th>
              <th>Last seen</th>
              <th>Status</th>
            </tr>
          </thead>
          <tbody>
            {workers.map((w) => (
              <tr key={w.id} data-session={w.id} data-accepted={w.updatesAccepted}>
                <td>{w.id}</td>
                <td>{w.name || "anonymous"}</td>
                <td>
                  {w.client.adapter}
                  {w.client.softwareFallback ? " (software)" : ""} · {w.client.kind}
                </td>
                <td>{number(w.samplesPerSecond)}</td>
                <td>{w.updatesAccepted}</td>
                <td>{w.updatesRefused}</td>
                <td>
                  {number(w.credit ?? 0)} ({number(w.verifiedCredit ?? 0)})
                </td>
                <td>
                  {bytes(w.bytesIn ?? 0)} / {bytes(w.bytesOut ?? 0)}
                </td>
                <td data-testid="worker-peer-bytes">
                  {bytes(w.peerBytesIn ?? 0)} / {bytes(w.peerBytesOut ?? 0)}
                </td>
                <td>{ago(w.lastSeenMsAgo)}</td>
                <td>
                  {w.quarantined ? "quarantined" : w.connected ? "connected" : "disconnected"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
