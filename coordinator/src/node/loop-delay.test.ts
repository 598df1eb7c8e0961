import { afterEach, describe, expect, it } from "vitest";
import { LoopDelay } from "./loop-delay.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Holds the event loop for `ms`, as a long synchronous handler would. */
function hold(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
}

describe("LoopDelay", () => {
  let delay: LoopDelay | undefined;
  afterEach(() => delay?.close());

  it("sees a hold in the recent maximum, and forgets it once its windows have passed", async () => {
    delay = new LoopDelay(100, 3);
    await sleep(30);
    hold(150);
    await sleep(30);
    expect(delay.recentMaxSeconds()).toBeGreaterThan(0.12);
    expect(delay.maxSeconds()).toBeGreaterThan(0.12);
    // Three windows of 100 ms, and a margin for a loaded machine's timers.
    await sleep(600);
    expect(delay.recentMaxSeconds()).toBeLessThan(0.12);
    // Since start still remembers it.
    expect(delay.maxSeconds()).toBeGreaterThan(0.12);
    const metrics = delay.metrics();
    const gauge = (name: string) =>
      Number(
        new RegExp(`^pangea_event_loop_delay_${name}_seconds (\\S+)$`, "m").exec(metrics)?.[1],
      );
    expect(gauge("max")).toBeGreaterThan(0.12);
    expect(gauge("recent_max")).toBeLessThan(0.12);
    expect(metrics).toContain("in the last 0.3 s");
  });
});
