import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { generate, sharedRoot } from "./gen.ts";

const capnpBinary = process.env.CAPNP ?? "capnp";
const hasCapnp = spawnSync(capnpBinary, ["--version"]).status === 0;
if (!hasCapnp && process.env.CI) {
  throw new Error(
    `CI must check src/gen/, but \`${capnpBinary}\` is missing: apt-get install capnproto`,
  );
}

describe.skipIf(!hasCapnp)(
  hasCapnp
    ? "generated code"
    : "generated code (skipped: `capnp` is not installed; apt-get install capnproto)",
  () => {
    it("src/gen/ is exactly what `pnpm gen` makes from the schema (run `pnpm gen` after editing it)", async () => {
      const fresh = await generate(capnpBinary);
      expect([...fresh.keys()].sort()).toEqual(["layout.ts", "pangea.ts"]);
      for (const [name, contents] of fresh) {
        const committed = readFileSync(join(sharedRoot, "src/gen", name), "utf8");
        expect(committed, `src/gen/${name} is out of date: run \`pnpm gen\``).toBe(contents);
      }
    });
  },
);
