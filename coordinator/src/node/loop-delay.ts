// How long the event loop was held: frames, commits and heartbeats all wait behind it. The
// histogram since start keeps the start-up's holds (loading a run, building the web UI's
// datasets), which hid every later one under them; the recent maximum covers only the last
// `windows` × `windowMs`, so a caller sampling it during a run sees that run's longest hold.
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";

export class LoopDelay {
  private readonly sinceStart: IntervalHistogram;
  private readonly current: IntervalHistogram;
  /** The maxima of the last closed windows, in nanoseconds, newest last. */
  private readonly closed: number[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    readonly windowMs = 10_000,
    private readonly windows = 6,
  ) {
    this.sinceStart = monitorEventLoopDelay({ resolution: 10 });
    this.current = monitorEventLoopDelay({ resolution: 10 });
    this.sinceStart.enable();
    this.current.enable();
    this.timer = setInterval(() => this.roll(), windowMs);
    this.timer.unref();
  }

  private roll(): void {
    this.closed.push(this.current.max);
    if (this.closed.length > this.windows - 1) this.closed.shift();
    this.current.reset();
  }

  /** The longest hold since start, in seconds. */
  maxSeconds(): number {
    return this.sinceStart.max / 1e9;
  }

  /** The 99th percentile delay since start, in seconds. */
  p99Seconds(): number {
    return this.sinceStart.percentile(99) / 1e9;
  }

  /** The longest hold within the last `windows` × `windowMs` (the open window included). */
  recentMaxSeconds(): number {
    return Math.max(this.current.max, ...this.closed) / 1e9;
  }

  /** The Prometheus lines for /metrics. */
  metrics(): string {
    const recentS = (this.windowMs * this.windows) / 1000;
    return [
      "# HELP pangea_event_loop_delay_max_seconds The longest the event loop was held, since start.",
      "# TYPE pangea_event_loop_delay_max_seconds gauge",
      `pangea_event_loop_delay_max_seconds ${this.maxSeconds().toFixed(4)}`,
      "# HELP pangea_event_loop_delay_p99_seconds The 99th percentile event-loop delay, since start.",
      "# TYPE pangea_event_loop_delay_p99_seconds gauge",
      `pangea_event_loop_delay_p99_seconds ${this.p99Seconds().toFixed(4)}`,
      `# HELP pangea_event_loop_delay_recent_max_seconds The longest the event loop was held in the last ${recentS} s.`,
      "# TYPE pangea_event_loop_delay_recent_max_seconds gauge",
      `pangea_event_loop_delay_recent_max_seconds ${this.recentMaxSeconds().toFixed(4)}`,
      "",
    ].join("\n");
  }

  close(): void {
    clearInterval(this.timer);
    this.sinceStart.disable();
    this.current.disable();
  }
}
