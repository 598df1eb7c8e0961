// The specs' `test`: one option, `backend`, set per Playwright project (playwright.config.ts),
// picks the coordinator the tabs train against: the Node server or the edge under wrangler dev.
import { test as base } from "@playwright/test";
import type { Backend } from "@pangea/coordinator/server-process";

export const test = base.extend<object, { backend: Backend }>({
  backend: ["node", { option: true, scope: "worker" }],
});
export { expect } from "@playwright/test";
