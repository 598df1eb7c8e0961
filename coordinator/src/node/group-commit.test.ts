// Group commit on the SQLite Store: the writes of one turn of the event loop are one transaction,
// the run's row written once from its newest snapshot, written and fsynced by the writer thread
// (off the event loop); whoever waits is told once it is committed; what arrives while the
// writer is busy goes in the next transaction; a shutdown waits for both; a commit that fails
// leaves the disk at the last one and says so; the writer checkpoints the WAL into the database
// file. The real server (node/server.ts) runs in this mode; its SIGKILL test (crash.test.ts)
// shows that nothing it announced is lost.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import type { MetricPoint, RunSnapshot } from "../core/ports.ts";
import { Simulation } from "../testing/simulation.ts";
import { SqliteStore } from "./sqlite-store.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const turn = () => new Promise((r) => setImmediate(r));
const durable = (store: SqliteStore) => new Promise<void>((r) => store.whenDurable(r));

function storeWithRun(options: ConstructorParameters<typeof SqliteStore>[1]) {
  const dir = mkdtempSync(join(tmpdir(), "pangea-group-"));
  dirs.push(dir);
  const store = new SqliteStore(dir, options);
  const sim = new Simulation(store);
  const run = sim.coordinator.createRun({ name: "g", dataset: "blobs" });
  return { dir, store, run };
}

/** A metric point of `version`, as a commit adds one. */
const point = (run: ReturnType<typeof storeWithRun>["run"], version: number): MetricPoint => ({
  runId: run.id,
  version,
  epoch: 0,
  at: version,
  trainLoss: 1,
  samplesPerSecond: 1,
  workers: 1,
});

const snapshot = (run: ReturnType<typeof storeWithRun>["run"]): RunSnapshot => ({
  record: run.record,
  parameters: run.parameters,
  optimizer: run.optimizer,
  progress: { epoch: 0, done: [] },
});

/** A store that counts its commit failures, its run's version 1 ready to commit. */
async function failingStore() {
  const failures: unknown[] = [];
  const made = storeWithRun({ groupCommit: true, onCommitFailure: (e) => failures.push(e) });
  await durable(made.store);
  made.run.record.version = 1;
  return { ...made, failures };
}

it("commits a turn's versions in one transaction, the row as of the last, then tells the waiting", async () => {
  const { dir, store, run } = storeWithRun({ groupCommit: true });
  await durable(store);
  const before = store.commits;
  expect(store.pending).toBe(false);
  const told: string[] = [];
  for (let v = 1; v <= 5; v++) {
    run.record.version = v;
    run.parameters[0] = v;
    store.commitVersion(snapshot(run), point(run, v));
    store.whenDurable(() => told.push(`v${v}`));
  }
  expect(store.pending).toBe(true);
  expect(told).toEqual([]);
  // Not on disk yet: another connection sees the run as it was.
  const other = new SqliteStore(dir);
  expect(other.loadRun(run.id)!.record.version).toBe(0);
  await turn();
  expect(store.commits - before).toBe(1);
  // Handed to the writer, and told only once it has committed.
  if (store.synced < store.commits) expect(told).toEqual([]);
  await durable(store);
  expect(store.synced).toBe(store.commits);
  expect(told).toEqual(["v1", "v2", "v3", "v4", "v5"]);
  const loaded = other.loadRun(run.id)!;
  expect([loaded.record.version, loaded.parameters[0]]).toEqual([5, 5]);
  expect(other.metrics(run.id).map((m) => m.version)).toEqual([1, 2, 3, 4, 5]);
  other.close();
  store.close();
});

it("rolls a failed commit back whole, tells no one, and reports it", async () => {
  const { dir, store, run, failures } = await failingStore();
  let told = false;
  store.commitVersion(
    { ...snapshot(run), parameters: undefined as unknown as Float32Array },
    point(run, 1),
  );
  store.whenDurable(() => {
    told = true;
  });
  await turn();
  expect(failures).toHaveLength(1);
  expect(told).toBe(false);
  expect(store.pending).toBe(false);
  const other = new SqliteStore(dir);
  expect(other.loadRun(run.id)!.record.version).toBe(0);
  expect(other.metrics(run.id)).toEqual([]);
  other.close();
  store.close();
});

it("rolls back whole a transaction the writer fails, tells no one, reports it, and writes nothing after", async () => {
  const { dir, store, run, failures } = await failingStore();
  let told = false;
  store.commitVersion(snapshot(run), point(run, 1));
  // The same run created twice: SQLite refuses it in the writer, as it would a full disk.
  store.createRun(snapshot(run));
  store.whenDurable(() => {
    told = true;
  });
  for (let i = 0; i < 100 && failures.length === 0; i++)
    await new Promise((r) => setTimeout(r, 20));
  expect(String(failures[0])).toMatch(/UNIQUE/);
  expect(told).toBe(false);
  // Whatever follows may build on what failed: it is not written, and no one is told.
  run.record.version = 2;
  store.commitVersion(snapshot(run));
  store.whenDurable(() => {
    told = true;
  });
  await turn();
  await new Promise((r) => setTimeout(r, 100));
  expect(told).toBe(false);
  expect(failures).toHaveLength(1);
  const other = new SqliteStore(dir);
  expect(other.loadRun(run.id)!.record.version).toBe(0);
  expect(other.metrics(run.id)).toEqual([]);
  other.close();
  store.close();
});

it("tells each turn's waiters only once their own transaction is committed, in order", async () => {
  const { store, run } = storeWithRun({ groupCommit: true });
  await durable(store);
  const told: number[] = [];
  const synced: number[] = [];
  for (let turnNo = 1; turnNo <= 4; turnNo++) {
    run.record.version = turnNo;
    store.commitVersion(snapshot(run));
    const commit = store.commits + 1;
    store.whenDurable(() => {
      told.push(turnNo);
      synced.push(store.synced - commit);
    });
    await turn();
  }
  await durable(store);
  expect(told).toEqual([1, 2, 3, 4]);
  // Never told before the writer committed its own transaction.
  expect(synced.every((d) => d >= 0)).toBe(true);
  expect(store.pending).toBe(false);
  store.close();
});

it("checkpoints the WAL into the database file on the writer's thread", async () => {
  const { dir, store, run } = storeWithRun({ groupCommit: true });
  await durable(store);
  const file = join(dir, "pangea.sqlite");
  const before = statSync(file).size;
  run.record.version = 1;
  store.commitVersion({ ...snapshot(run), parameters: new Float32Array(1 << 20).fill(1) });
  await turn();
  await durable(store);
  // Only a checkpoint writes the database file itself. The first may have begun before this
  // commit (at the store's opening), and a PASSIVE one copies only what was committed when it
  // began: wait for a checkpoint reported since, and the 4 MiB of parameters in the file (the
  // file grows while a checkpoint copies, before it reports).
  const counted = store.checkpoints;
  const grown = () => statSync(file).size - before > 4 << 20;
  for (let i = 0; i < 200 && !(store.checkpoints > counted && grown()); i++) {
    await new Promise((r) => setTimeout(r, 50));
    // The writer checkpoints after a commit, at most once a second.
    if (i % 25 === 24) {
      store.updateRun(run.record);
      await durable(store);
    }
  }
  expect(store.checkpoints).toBeGreaterThan(0);
  expect(statSync(file).size - before).toBeGreaterThan(4 << 20);
  store.close();
  const reopened = new SqliteStore(dir);
  expect(reopened.loadRun(run.id)!.parameters.length).toBe(1 << 20);
  reopened.close();
});

it("gathers what arrives while the writer is busy into the next transaction; a shutdown waits for both", async () => {
  const { dir, store, run } = storeWithRun({ groupCommit: true });
  await durable(store);
  const told: number[] = [];
  run.record.version = 1;
  store.commitVersion(snapshot(run));
  store.whenDurable(() => told.push(1));
  store.flush();
  const first = store.commits;
  // With the writer now: these wait for the next transaction, however many turns they span.
  for (let v = 2; v <= 4; v++) {
    run.record.version = v;
    run.parameters[0] = v;
    store.commitVersion(snapshot(run));
    store.whenDurable(() => told.push(v));
    store.flush();
  }
  expect(store.commits).toBe(first);
  // Blocking, as at shutdown: both transactions committed and told before it returns.
  store.syncNow();
  expect(store.commits).toBe(first + 1);
  expect(store.synced).toBe(store.commits);
  expect(told).toEqual([1, 2, 3, 4]);
  expect(store.pending).toBe(false);
  const other = new SqliteStore(dir);
  const loaded = other.loadRun(run.id)!;
  expect([loaded.record.version, loaded.parameters[0]]).toEqual([4, 4]);
  other.close();
  store.close();
});

it("makes each write its own durable transaction without group commit", () => {
  const { store, run } = storeWithRun({});
  const before = store.commits;
  store.commitVersion(snapshot(run));
  store.commitVersion(snapshot(run));
  expect(store.commits - before).toBe(2);
  expect(store.pending).toBe(false);
  store.close();
});
