// What the specs do with pages: open contributor tabs, read their numbers, sign in to the dashboard.
import { expect, type BrowserContext, type Page } from "@playwright/test";

export interface Tab {
  page: Page;
  /** The coordinator session this tab trains as (from the page's data-session). */
  session(): Promise<string>;
  batches(): Promise<number>;
}

/**
 * Fails the spec on a Content Security Policy violation: the built UI must run under the policy
 * the coordinator sends (core/surface.ts), workers included.
 */
export function guardPolicy(page: Page): void {
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to (load|execute|apply|connect|create)/.test(m.text()))
      throw new Error(`a CSP violation on ${page.url()}: ${m.text()}`);
  });
}

export async function openContributor(
  context: BrowserContext,
  url: string,
  runId = "",
  /** A name for the leaderboard, typed in before starting; anonymous when absent. */
  displayName = "",
): Promise<Tab> {
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw new Error(`the contributor page threw: ${e.message}`);
  });
  guardPolicy(page);
  await page.goto(runId ? `${url}/?run=${runId}` : `${url}/`);
  if (displayName) await page.getByTestId("display-name").fill(displayName);
  await page.getByTestId("start").click();
  await expect(page.getByTestId("connection")).toHaveText("connected", { timeout: 60_000 });
  await expect(page.getByTestId("contributing")).toHaveAttribute("data-session", /^s_/);
  return {
    page,
    session: async () =>
      (await page.getByTestId("contributing").getAttribute("data-session")) ?? "",
    batches: async () => Number(await page.getByTestId("batches").innerText()),
  };
}

export async function signIn(page: Page, url: string, token: string): Promise<void> {
  guardPolicy(page);
  await page.goto(`${url}/admin`);
  await page.getByTestId("token").fill(token);
  await page.getByTestId("sign-in").click();
  await expect(page.getByTestId("create-run")).toBeVisible();
}

export interface RunStatus {
  id: string;
  state: string;
  version: number;
  epoch: number;
  batchesPerEpoch: number;
  evaluation: { accuracy: number; loss: number; version: number } | null;
  counters: { samples: number; batchCommits?: Record<string, number>; updatesAccepted: number };
  workers: { id: string; updatesAccepted: number; connected: boolean }[];
}
