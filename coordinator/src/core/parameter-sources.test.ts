// Who serves a version's frame to whom: a burst of receivers before anyone holds the version.
import { describe, expect, it } from "vitest";
import { ParameterSources, UNREACHABLE_AFTER } from "./parameter-sources.ts";

const anyone = () => true;

describe("ParameterSources", () => {
  it("names the holder for up to fanout receivers, then the receivers still fetching from it", () => {
    const sources = new ParameterSources({ fanout: 4 });
    sources.hold("root", 7); // the coordinator sent it the frame
    const named = ["a", "b", "c", "d"].map((r) => sources.pick(r, 7, anyone));
    expect(named).toEqual(["root", "root", "root", "root"]);
    // The holder is full: the next receivers wait on a receiver's own fetch, spread evenly.
    const second = ["e", "f", "g", "h", "i"].map((r) => sources.pick(r, 7, anyone));
    expect(second.every((p) => p !== undefined && ["a", "b", "c", "d"].includes(p))).toBe(true);
    expect(new Set(second.slice(0, 4)).size).toBe(4);
    // One hop only: "e" was named a receiver still fetching, so it is named for no one.
    for (let i = 0; i < 11; i++) expect(sources.pick(`x${i}`, 7, anyone)).not.toBe("e");
  });

  it("a provisional holder that gets the frame keeps the receivers it was named for", () => {
    const sources = new ParameterSources({ fanout: 2 });
    sources.hold("root", 1);
    sources.pick("a", 1, anyone);
    sources.pick("b", 1, anyone);
    expect(sources.pick("c", 1, anyone)).toBe("a");
    expect(sources.pick("d", 1, anyone)).toBe("b");
    sources.hold("a", 1); // its fetch worked (its update on version 1 arrived)
    expect(sources.pick("e", 1, anyone)).toBe("a"); // a holder first, while one has room
    // Both holders are full: receivers still fetching, the least named first.
    expect(sources.pick("f", 1, anyone)).toBe("e");
    expect(sources.pick("g", 1, anyone)).toBe("b");
    expect(sources.pick("h", 1, anyone)).toBe("e");
    expect(sources.pick("i", 1, anyone)).toBe(undefined); // everyone under the fanout is full
  });

  it("a new version forgets the old one's holders and provisional holders", () => {
    const sources = new ParameterSources({ fanout: 4 });
    sources.hold("root", 1);
    sources.pick("a", 1, anyone);
    sources.hold("root", 2);
    expect(sources.pick("b", 1, anyone)).toBe(undefined); // not the current version
    expect(sources.pick("b", 2, anyone)).toBe("root");
    sources.hold("z", 3);
    expect(sources.pick("c", 3, (id) => id !== "z")).toBe(undefined);
  });

  it("leaves out receivers still fetching whose transfers fail, and those struck", () => {
    const sources = new ParameterSources({ fanout: 1 });
    sources.hold("root", 1);
    expect(sources.pick("a", 1, anyone)).toBe("root");
    for (let i = 0; i < UNREACHABLE_AFTER; i++) sources.undelivered("q", "a");
    expect(sources.pick("b", 1, anyone)).toBe(undefined);
    sources.hold("root", 2);
    expect(sources.pick("c", 2, anyone)).toBe("root");
    sources.accuse("c", "x");
    expect(sources.accuse("c", "y")).toBe(true);
    expect(sources.pick("d", 2, anyone)).toBe(undefined);
    sources.hold("c", 2); // a struck session is never a holder again
    expect(sources.pick("d", 2, anyone)).toBe(undefined);
  });
});
