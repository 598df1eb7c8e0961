import { seededRandom } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { batchSamples, epochOrder, Scheduler } from "./scheduler.ts";

const fresh = (batches = 10, redundancy = 0) =>
  new Scheduler(batches, 3, redundancy, { epoch: 0, done: [] }, 1000);

describe("the scheduler", () => {
  it("visits every batch once per epoch in a seeded order", () => {
    const order = epochOrder(10, 3, 0);
    expect([...order].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect([...epochOrder(10, 3, 1)]).not.toEqual([...order]);
    expect([...epochOrder(10, 3, 0)]).toEqual([...order]);
    const s = fresh();
    const leased = Array.from({ length: 10 }, () => s.issue("a", 0, 100, 0)!.batch);
    expect(leased).toEqual([...order]);
    // With nothing left in this epoch, the next epoch's batches go out, in their own order.
    const ahead = Array.from({ length: 10 }, () => s.issue("a", 0, 100, 0)!);
    expect(ahead.map((l) => l.epoch)).toEqual(new Array(10).fill(1));
    expect(ahead.map((l) => l.batch)).toEqual([...epochOrder(10, 3, 1)]);
    expect(s.issue("a", 0, 100, 0)).toBeUndefined();
  });

  it("cuts the shuffled samples into whole batches and one short last batch", () => {
    const all = Array.from({ length: 4 }, (_, b) => [...batchSamples(10, 3, 5, b)]);
    expect(all.map((b) => b.length)).toEqual([3, 3, 3, 1]);
    expect(all.flat().sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
  });

  it("expires a lease at its deadline and reissues its batch before any other", () => {
    const s = fresh();
    const first = s.issue("a", 0, 100, 0)!;
    s.issue("a", 0, 100, 0);
    expect(s.expire(99)).toEqual([]);
    const expired = s.expire(100);
    expect(expired.map((l) => l.id).sort()).toEqual([first.id, first.id + 1]);
    expect(s.reissues).toBe(2);
    const again = s.issue("b", 100, 100, 0)!;
    expect(again.batch).toBe(first.batch);
    expect(again.id).not.toBe(first.id);
    expect(s.get(first.id)).toBeUndefined();
  });

  it("hands a leaving session's batches back at once", () => {
    const s = fresh();
    const l = s.issue("a", 0, 10_000, 0)!;
    s.release("a");
    expect(s.issue("b", 1, 10_000, 0)!.batch).toBe(l.batch);
  });

  it("counts every batch exactly once per epoch under random joins, leaves and expiries", () => {
    const batches = 23;
    const s = new Scheduler(batches, 9, 0, { epoch: 0, done: [] }, 1);
    const random = seededRandom(11);
    const counted = new Map<number, number[]>(); // epoch -> count per batch
    const sessions = ["s0", "s1", "s2"];
    let pending: Array<{ epoch: number; batch: number }> = [];
    let now = 0;
    let serial = 3;
    while (s.epoch < 6) {
      now += 10;
      const r = random();
      if (r < 0.05) sessions.push(`s${serial++}`);
      else if (r < 0.1 && sessions.length > 1) {
        const gone = sessions.splice(Math.floor(random() * sessions.length), 1)[0]!;
        s.release(gone);
      }
      s.expire(now);
      const who = sessions[Math.floor(random() * sessions.length)]!;
      const lease = s.issue(who, now, 20 + Math.floor(random() * 60), 0);
      // Leases come back (or not) later: pick a live one and finish it, sometimes.
      const live = s.liveLeases();
      if (live.length > 0 && random() < 0.6) {
        const l = live[Math.floor(random() * live.length)]!;
        if (l.deadline > now && sessions.includes(l.sessionId) && s.accept(l.id) === "counted") {
          const counts = counted.get(l.epoch) ?? new Array(batches).fill(0);
          counts[l.batch]++;
          counted.set(l.epoch, counts);
          pending.push(l);
        }
      }
      if (pending.length >= 3 || (lease === undefined && pending.length > 0)) {
        s.commit(pending);
        pending = [];
      }
    }
    for (let e = 0; e < 5; e++) expect(counted.get(e)).toEqual(new Array(batches).fill(1));
  });

  it("gives a redundant batch to a second, different session and marks its copy a duplicate", () => {
    const s = fresh(4, 1); // every batch redundant
    const a = Array.from({ length: 8 }, () => s.issue("a", 0, 100, 0)!); // this epoch and the next
    expect(s.issue("a", 0, 100, 0)).toBeUndefined(); // never twice to the same session
    const b = s.issue("b", 0, 100, 0)!;
    expect(b.replica).toBe(1);
    expect(a.map((l) => l.batch)).toContain(b.batch);
    const twin = a.find((l) => l.batch === b.batch && l.epoch === b.epoch)!;
    expect(s.accept(twin.id)).toBe("counted");
    expect(s.accept(b.id)).toBe("duplicate");
  });

  it("wants a replica after its first copy came in, from that version, and again if it lapses", () => {
    const s = fresh(4, 1);
    const first = s.issue("a", 0, 100, 0)!;
    expect(s.accept(first.id)).toBe("counted");
    // The run moved on to version 3 and keeps version 0: the replica starts from version 0.
    const keeps = (v: number) => v === 0;
    expect(s.issueCopy("a", 0, 100, 3, keeps)).toBeUndefined(); // not to the first's session
    expect(s.issueCopy("b", 0, 100, 3, () => false)).toBeUndefined(); // version 0 is gone
    const copy = s.issueCopy("b", 0, 100, 3, keeps)!;
    expect([copy.batch, copy.baseVersion, copy.replica]).toEqual([first.batch, 0, 1]);
    expect(s.needs(0)).toBe(true);
    // Its session goes quiet: the copy is wanted from someone else, still never from "a".
    s.expire(100);
    expect(s.issueCopy("a", 100, 100, 3, keeps)).toBeUndefined();
    const again = s.issueCopy("c", 100, 100, 3, keeps)!;
    expect([again.batch, again.baseVersion]).toEqual([first.batch, 0]);
    expect(s.accept(again.id)).toBe("duplicate");
    expect(s.needs(0)).toBe(false);
  });

  it("resumes an epoch from its committed batches", () => {
    const s = fresh(5);
    const done = [0, 1, 2].map(() => s.issue("a", 0, 100, 0)!);
    for (const l of done) s.accept(l.id);
    s.commit(done);
    const resumed = new Scheduler(5, 3, 0, s.progress(), 5000);
    const rest = [resumed.issue("b", 0, 100, 0)!, resumed.issue("b", 0, 100, 0)!];
    expect(rest.map((l) => l.epoch)).toEqual([0, 0]);
    expect([...done, ...rest].map((l) => l.batch).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(resumed.issue("b", 0, 100, 0)!.epoch).toBe(1); // the next epoch, early
    for (const l of rest) resumed.accept(l.id);
    expect(resumed.commit(rest)).toBe(true);
    expect(resumed.epoch).toBe(1);
  });
});
