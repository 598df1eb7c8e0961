// The core must stay runtime-agnostic (DESIGN.md): the linter refuses node:*, ws, cloudflare:*
// and database imports under coordinator/src/core/, and allows them in the adapters.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");
const biome = join(repo, "node_modules/.bin/biome");
const scratch = mkdtempSync(join(tmpdir(), "pangea-lint-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// The project's own config, minus the git integration (the scratch folder is not a repository).
const config = JSON.parse(readFileSync(join(repo, "biome.json"), "utf8"));
config.$schema = undefined;
config.vcs = { enabled: false };
writeFileSync(join(scratch, "biome.json"), JSON.stringify(config));

function lint(path: string, source: string): { ok: boolean; output: string } {
  const file = join(scratch, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, source);
  const run = spawnSync(biome, ["lint", "--max-diagnostics=50", path], {
    cwd: scratch,
    encoding: "utf8",
  });
  rmSync(file);
  return { ok: run.status === 0, output: run.stdout + run.stderr };
}

describe("the core's import boundary", () => {
  it.each([
    ['import { readFileSync } from "node:fs";', "no node:* imports"],
    ['import { WebSocketServer } from "ws";', "not ws"],
    ['import { DurableObject } from "cloudflare:workers";', "no cloudflare:* imports"],
    ['import Database from "better-sqlite3";', "Store port"],
    ['import { Database } from "bun:sqlite";', "Store port"],
  ])("refuses %s in coordinator/src/core/", (line, message) => {
    const result = lint("coordinator/src/core/probe.ts", `${line}\nexport const probe = [0];\n`);
    expect(result.ok).toBe(false);
    expect(result.output).toContain(message);
  });

  it("allows the same imports in the Node adapter, and clean code in the core", () => {
    expect(
      lint(
        "coordinator/src/node/probe.ts",
        'import { readFileSync } from "node:fs";\nexport const probe = readFileSync;\n',
      ).ok,
    ).toBe(true);
    expect(lint("coordinator/src/core/probe.ts", "export const probe = [0];\n").ok).toBe(true);
  });

  it("finds no runtime import in the core as it stands", () => {
    // --no-errors-on-unmatched: the core may still be empty; any file in it is linted.
    execFileSync(biome, ["lint", "--no-errors-on-unmatched", "coordinator/src/core"], {
      cwd: repo,
    });
  });
});
