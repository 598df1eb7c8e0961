// The edge serves the built UI as static assets, outside the Worker: their headers come from
// client-web/public/_headers, which must say what core/surface.ts says.
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { SECURITY_HEADERS } from "../core/surface.ts";

it("the static assets' _headers file holds the core's security headers", () => {
  const text = readFileSync(
    new URL("../../../client-web/public/_headers", import.meta.url),
    "utf8",
  );
  const lines = text.split("\n").filter((l) => l.startsWith("  "));
  const headers = Object.fromEntries(
    lines.map((l) => {
      const at = l.indexOf(":");
      return [l.slice(0, at).trim().toLowerCase(), l.slice(at + 1).trim()];
    }),
  );
  expect(headers).toEqual(SECURITY_HEADERS);
  expect(text).toMatch(/^\/\*$/m);
});
