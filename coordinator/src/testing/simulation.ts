// Many headless workers and one coordinator in one process, on a simulated clock: frames go
// through the real codec and the real core, delivered one at a time from a queue (so no call
// stack grows with the run), and time moves only when nothing else is left to do. Used by the
// core's tests; nothing here is a stand-in for the code under test.
import { mnistShard } from "@pangea/shared/mnist";
import { Coordinator, type CoordinatorOptions } from "../core/coordinator.ts";
import { runEvaluation } from "../core/evaluation.ts";
import { MemoryStore } from "../core/memory-store.ts";
import type { Clock, Peer, Store } from "../core/ports.ts";
import { HeadlessWorker, type HeadlessWorkerOptions } from "../worker/headless-worker.ts";

/**
 * MNIST through its JSON imports, which load in Node and in workerd alike; evaluations run at
 * once, inside the event that made them due, so that a simulated run is deterministic.
 */
const SIMULATED: CoordinatorOptions = { datasets: { mnist: mnistShard }, evaluator: runEvaluation };

export class SimulatedClock implements Clock {
  constructor(public t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
}

interface Delivery {
  to: "coordinator" | HeadlessWorker;
  from: SimulatedPeer;
  frame: Uint8Array;
}

class SimulatedPeer implements Peer {
  open = true;
  worker!: HeadlessWorker;
  constructor(private readonly sim: Simulation) {}
  send(frame: Uint8Array): void {
    if (this.open) this.sim.queue.push({ to: this.worker, from: this, frame: frame.slice() });
  }
  close(): void {
    this.open = false;
  }
  bufferedAmount(): number {
    return 0;
  }
}

export class Simulation {
  readonly clock = new SimulatedClock();
  readonly store: Store;
  coordinator: Coordinator;
  readonly queue: Delivery[] = [];
  private timers: Array<{ at: number; fn: () => void }> = [];
  readonly workers = new Map<HeadlessWorker, SimulatedPeer>();
  /** Simulated milliseconds each lease takes a worker (its compute time). */
  computeMs = 50;

  constructor(
    store: Store = new MemoryStore(),
    /** Beyond MNIST and inline evaluation: more datasets, platform limits. */
    readonly options: CoordinatorOptions = {},
  ) {
    this.store = store;
    this.coordinator = new Coordinator(store, this.clock, this.coordinatorOptions());
  }

  private coordinatorOptions(): CoordinatorOptions {
    const datasets = { ...SIMULATED.datasets, ...this.options.datasets };
    return { ...SIMULATED, ...this.options, datasets };
  }

  addWorker(options: HeadlessWorkerOptions = {}): HeadlessWorker {
    const peer = new SimulatedPeer(this);
    const worker = new HeadlessWorker({
      ...options,
      schedule: (fn, ms) => this.timers.push({ at: this.clock.t + ms, fn }),
      now: () => this.clock.t,
      // The shard a run serves over HTTP, handed over in process (and checked by its hash).
      loadShard:
        options.loadShard ??
        ((source) => {
          for (const run of this.coordinator.runs.values())
            if (run.data.sha256 === source.sha256) return run.data.bytes;
          throw new Error(`no run serves ${source.name}`);
        }),
    });
    peer.worker = worker;
    this.workers.set(worker, peer);
    this.coordinator.connect(peer);
    worker.connect((frame) => {
      if (peer.open) this.queue.push({ to: "coordinator", from: peer, frame });
    });
    return worker;
  }

  /** The worker's connection drops (a closed tab): no leave message, just gone. */
  dropWorker(worker: HeadlessWorker): void {
    const peer = this.workers.get(worker)!;
    peer.open = false;
    worker.disconnect();
    this.workers.delete(worker);
    this.coordinator.disconnect(peer);
  }

  /** Replaces the coordinator with a new one over the same Store (a restart). */
  restart(): void {
    this.queue.length = 0;
    this.coordinator = new Coordinator(this.store, this.clock, this.coordinatorOptions());
  }

  /**
   * Delivers frames and advances time until `done()` or `maxSteps` deliveries. Worker frames
   * that carry an update arrive `computeMs` after the lease, so time moves as training would.
   */
  runUntil(done: () => boolean, maxSteps = 1_000_000): boolean {
    for (let step = 0; step < maxSteps; step++) {
      if (done()) return true;
      const d = this.queue.shift();
      if (d) {
        this.clock.t += 1;
        if (d.to === "coordinator") {
          if (d.from.open) this.coordinator.receive(d.from, d.frame);
        } else if (d.from.open) {
          d.to.receive(d.frame);
        }
        continue;
      }
      // Nothing in flight: move the clock to the next timer (or a compute time later), fire
      // every timer that is due by then, and tick.
      this.timers.sort((a, b) => a.at - b.at);
      this.clock.t = Math.max(this.clock.t + this.computeMs, this.timers[0]?.at ?? 0);
      const due = this.timers.filter((t) => t.at <= this.clock.t);
      this.timers = this.timers.filter((t) => t.at > this.clock.t);
      for (const t of due) t.fn();
      this.coordinator.tick();
    }
    return done();
  }
}
