// The coordinator's bookkeeping of groups, message by message: who may send which part, what a
// wrong one changes (nothing), when a group is taken, and how a disputed part names its owner.
import { partHash, partRange, pieceHashes, reducePart } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { type Declaration, type Group, REDUCE_MS, ReduceGroups } from "./reduce-groups.ts";
import type { Lease } from "./scheduler.ts";

const N = 1000;
const updates = [1, 2, 3].map((k) => Float32Array.from({ length: N }, (_, i) => Math.sin(i * k)));

function declaration(i: number): Declaration {
  const lease = { id: 10 + i, baseVersion: 4, sessionId: `s${i}` } as unknown as Lease;
  return {
    sessionId: `s${i}`,
    messageId: `m${i}`,
    lease,
    samples: 8,
    loss: 1,
    pieceHashes: pieceHashes(updates[i]!),
  };
}

/** Part k of a group of three, reduced from the members' updates as an owner would. */
function reduced(k: number): Float32Array {
  const { start, end } = partRange(N, 3, k);
  return reducePart(
    updates.map((u) => u.subarray(start, end)),
    [8, 8, 8],
    "mean",
    0,
  );
}

const part = (group: Group, k: number, values?: Float32Array, hash?: string) => ({
  type: "reducedPart" as const,
  group: group.id,
  part: k,
  data: values
    ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice()
    : new Uint8Array(0),
  sha256: hash ?? partHash(reduced(k)),
  badBytes: [],
  missing: [],
});

function groupOfThree(): { groups: ReduceGroups; group: Group } {
  const groups = new ReduceGroups(3, N, "mean", 0);
  expect(groups.declare(declaration(0), 0, false)).toEqual([]);
  expect(groups.declare(declaration(1), 0, false)).toEqual([]);
  const [group] = groups.declare(declaration(2), 0, false);
  expect(group!.members.map((m) => m.sessionId)).toEqual(["s0", "s1", "s2"]);
  return { groups, group: group! };
}

describe("ReduceGroups", () => {
  it("takes a group once every part's reducer and checker agree", () => {
    const { groups, group } = groupOfThree();
    // Member i reduces part i and checks part i-1.
    for (const k of [0, 1, 2]) {
      expect(groups.part(`s${k}`, part(group, k, reduced(k)))).toEqual({ accused: [] });
      const checked = groups.part(`s${(k + 1) % 3}`, part(group, k));
      if (k < 2) expect(checked).toEqual({ accused: [] });
      else {
        const outcome = (checked as { outcome: { kind: string; update: Float32Array } }).outcome;
        expect(outcome.kind).toBe("reduced");
        for (const j of [0, 1, 2]) {
          const { start, end } = partRange(N, 3, j);
          expect(outcome.update.subarray(start, end)).toEqual(reduced(j));
        }
      }
    }
    expect(groups.reducing.size).toBe(0);
  });

  it("refuses parts from strangers, of the wrong size, sent twice or not the sender's, changing nothing", () => {
    const { groups, group } = groupOfThree();
    expect(groups.part("s9", part(group, 0, reduced(0)))).toMatchObject({
      refused: expect.stringMatching(/not in group/),
    });
    expect(groups.part("s2", part(group, 0, reduced(0)))).toMatchObject({
      refused: expect.stringMatching(/not this session's/),
    });
    expect(groups.part("s0", part(group, 0, reduced(0).subarray(1)))).toMatchObject({
      refused: expect.stringMatching(/floats, not/),
    });
    expect(groups.part("s0", { ...part(group, 7, reduced(0)) })).toMatchObject({
      refused: expect.stringMatching(/has 3 parts/),
    });
    expect(groups.part("s1", part(group, 0, undefined, "not hex"))).toMatchObject({
      refused: expect.stringMatching(/64 lowercase hex/),
    });
    expect(groups.part("s0", part(group, 0, reduced(0)))).toEqual({ accused: [] });
    expect(groups.part("s0", part(group, 0, reduced(0)))).toMatchObject({
      refused: expect.stringMatching(/already in/),
    });
    expect(groups.reducing.has(group.id)).toBe(true);
  });

  it("falls back on a disagreement, and the whole updates name the owner that was wrong", () => {
    const { groups, group } = groupOfThree();
    const wrong = reduced(1);
    wrong[0]! += 1;
    groups.part("s0", part(group, 0, reduced(0)));
    groups.part("s1", part(group, 0));
    groups.part("s1", part(group, 1, wrong)); // s1 reduces part 1 wrongly
    groups.part("s2", part(group, 1));
    groups.part("s2", part(group, 2, reduced(2)));
    const last = groups.part("s0", part(group, 2)) as { outcome: { kind: string } };
    expect(last.outcome.kind).toBe("fallback");
    // The members' whole updates arrive, each checked against its declaration.
    const whole = (i: number) => [updates[i]!.subarray(0, 400), updates[i]!.subarray(400)];
    expect(groups.arrived(10, whole(0))).toEqual({ matches: true, wrong: [] });
    expect(groups.arrived(11, [updates[0]!])).toEqual({ matches: false, wrong: [] });
    expect(groups.arrived(12, whole(2))).toEqual({ matches: true, wrong: [] });
  });

  it("settles a dispute once every member's update is in", () => {
    const { groups, group } = groupOfThree();
    const wrong = reduced(1);
    wrong[3]! -= 1;
    groups.part("s1", part(group, 1, wrong));
    groups.part("s2", part(group, 1));
    for (const k of [0, 2]) {
      groups.part(`s${k}`, part(group, k, reduced(k)));
      groups.part(`s${(k + 1) % 3}`, part(group, k));
    }
    expect(groups.arrived(10, [updates[0]!]).wrong).toEqual([]);
    expect(groups.arrived(11, [updates[1]!]).wrong).toEqual([]);
    expect(groups.arrived(12, [updates[2]!])).toEqual({ matches: true, wrong: ["s1"] });
  });

  it("falls back a group whose member left, and one past its deadline", () => {
    const { groups } = groupOfThree();
    groups.drop(11);
    expect(groups.expire(1).map((o) => o.kind)).toEqual(["fallback"]);
    const late = groupOfThree();
    expect(late.groups.expire(REDUCE_MS - 1)).toEqual([]);
    expect(late.groups.expire(REDUCE_MS).map((o) => o.kind === "fallback" && o.why)).toEqual([
      `group ${late.group.id}'s parts did not all come in time`,
    ]);
  });

  it("strikes a member whose bytes two different owners found not matching its declaration", () => {
    const groups = new ReduceGroups(3, N, "mean", 0);
    const form = () => {
      groups.declare(declaration(0), 0, false);
      groups.declare(declaration(1), 0, false);
      return groups.declare(declaration(2), 0, false)[0]!;
    };
    const first = form();
    const a = groups.part("s1", { ...part(first, 1), badBytes: ["s0"] });
    expect(a).toMatchObject({ accused: [], outcome: { kind: "fallback" } });
    // The same accuser again is still one accuser; a second one completes the strike.
    const second = form();
    expect(groups.part("s1", { ...part(second, 1), badBytes: ["s0"] })).toMatchObject({
      accused: [],
    });
    const third = form();
    expect(groups.part("s2", { ...part(third, 2), badBytes: ["s0"] })).toMatchObject({
      accused: ["s0"],
    });
  });

  it("declarations still gathering when their version closes are handed back", () => {
    const groups = new ReduceGroups(4, N, "mean", 0);
    groups.declare(declaration(0), 0, false);
    groups.declare(declaration(1), 0, false);
    expect(groups.busy).toBe(true);
    expect(groups.takeOpen().map((d) => d.sessionId)).toEqual(["s0", "s1"]);
    expect(groups.busy).toBe(false);
    expect(groups.declaredCount).toBe(0);
  });
});
