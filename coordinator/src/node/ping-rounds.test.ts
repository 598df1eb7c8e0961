// The WebSocket pinger: once per period per socket, however few or many sockets there are, a
// slice per tick; a socket that has not answered its last ping by its next one is dropped, and
// one that is only slow (busy for seconds, as a CPU worker is while it computes) is not.
import { describe, expect, it } from "vitest";
import { PingRounds } from "./ping-rounds.ts";

class FakeSocket {
  readyState = 1;
  pings: number[] = [];
  terminated = false;
  constructor(private readonly clock: { now: number }) {}
  ping() {
    this.pings.push(this.clock.now);
  }
  terminate() {
    this.terminated = true;
    this.readyState = 3;
  }
}

const PERIOD = 15_000;
const TICK = 250;

/** `count` sockets; `delay(s)` is how late a socket answers a ping (undefined: never). */
function setUp(count: number, delay: (s: FakeSocket) => number | undefined = () => 0) {
  const clock = { now: 0 };
  const sockets = Array.from({ length: count }, () => new FakeSocket(clock));
  const rounds = new PingRounds(() => sockets, PERIOD, TICK);
  for (const s of sockets) rounds.heard(s);
  const run = (ms: number) => {
    for (const end = clock.now + ms; clock.now < end; clock.now += TICK) {
      rounds.tick(clock.now);
      for (const s of sockets) {
        const d = delay(s);
        if (d !== undefined && s.pings.some((p) => p + d === clock.now)) rounds.heard(s);
      }
    }
  };
  return { clock, sockets, run, rounds };
}

describe("ping rounds", () => {
  it("pings each of a few sockets once per period, not once per round of ticks", () => {
    const { sockets, run } = setUp(3);
    run(60_000);
    for (const s of sockets) {
      expect(s.pings).toHaveLength(4);
      expect(s.pings[1]! - s.pings[0]!).toBe(PERIOD);
      expect(s.terminated).toBe(false);
    }
  });

  it("spreads 10,000 sockets over the period, a slice per tick, each once", () => {
    const { sockets, run, rounds, clock } = setUp(10_000);
    rounds.tick(clock.now);
    const first = sockets.filter((s) => s.pings.length === 1).length;
    expect(first).toBe(Math.ceil((10_000 * TICK) / PERIOD));
    run(PERIOD);
    expect(sockets.every((s) => s.pings.length === 1)).toBe(true);
  });

  it("keeps a socket that answers 10 s late (busy computing) and drops one that never answers", () => {
    let silent: FakeSocket | undefined;
    const { sockets, run } = setUp(2, (s) => (s === silent ? undefined : 10_000));
    silent = sockets[1];
    run(60_000);
    expect(sockets[0]!.terminated).toBe(false);
    expect(sockets[0]!.pings).toHaveLength(4);
    // Pinged once, unanswered at its next turn a period later: dropped then, not sooner.
    expect(silent!.terminated).toBe(true);
    expect(silent!.pings).toHaveLength(1);
  });
});
