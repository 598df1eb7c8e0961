// Tabs hand each other parameter frames and reduce their updates among themselves over WebRTC
// (simple-peer in the page), hash-checked, instead of every tab pulling every version from the
// coordinator and sending it every update. Six tabs reduce in groups while two of them close in
// the middle of a reduction; the same run without peers gives the bytes to compare with; and a tab
// whose browser cannot make WebRTC connections (no non-proxied UDP, and no proxy) trains over the
// WebSocket alone, its peer fetches falling back to the coordinator and its updates sent whole.
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { mnistMlp } from "@pangea/shared";
import type { Page } from "@playwright/test";
import { chromiumArgs, chromiumPath } from "../../scripts/chromium.ts";
import { expect, test } from "../support/fixtures.ts";
import { openContributor, type RunStatus, signIn } from "../support/pages.ts";

const VERSIONS = 40;
const TABS = 6;

/** A synchronous MNIST run: every tab's update in each version. */
const runConfig = (
  name: string,
  options: { peers: boolean; reduceGroup?: number; targetUpdates: number; stop: object },
) => ({
  name,
  model: mnistMlp,
  dataset: "mnist",
  batchSize: 64,
  strategy: { kind: "synchronous", targetUpdates: options.targetUpdates, stragglerMs: 1_500 },
  optimizer: { kind: "adamw", learningRate: 1e-3 },
  evaluateEvery: 20,
  stop: options.stop,
  peers: options.peers,
  reduceGroup: options.reduceGroup ?? 0,
});
/** The coordinator's bytes per sample in the six tabs' run with peers (the first test). */
let withPeers: { in: number; out: number } | undefined;

let server: ServerProcess;
test.beforeAll(async () => {
  server = await serverProcess({ demo: false });
});
test.afterAll(async () => {
  await server?.dispose();
});

type Traffic = { bytesIn: number; bytesOut: number; peerBytes: number; samples: number };
type Worker = RunStatus["workers"][number] & {
  peerBytesIn?: number;
  peerBytesOut?: number;
  bytesOut?: number;
};
type Status = Omit<RunStatus, "workers"> & {
  traffic: Traffic;
  workers: Worker[];
  counters: RunStatus["counters"] & { groupsReduced?: number; groupFallbacks?: number };
  reducing?: Array<{ group: number; members: string[] }>;
};

async function status(runId: string): Promise<Status> {
  return (await (await server.api(`/api/runs/${runId}`)).json()) as Status;
}

async function finished(runId: string): Promise<Status> {
  await expect
    .poll(async () => (await status(runId)).state, { timeout: 8 * 60_000, intervals: [2000] })
    .toBe("finished");
  return status(runId);
}

/** The run's coordinator bytes per sample, read from /metrics (pangea_run_bytes_total). */
async function bytesPerSample(
  runId: string,
  samples: number,
): Promise<{ in: number; out: number }> {
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const read = (path: string) =>
    Number(
      new RegExp(`pangea_run_bytes_total\\{run="${runId}",path="${path}"\\} (\\d+)`).exec(
        metrics,
      )?.[1],
    );
  return { in: read("coordinator_in") / samples, out: read("coordinator_out") / samples };
}

test("six tabs reduce their updates among themselves; two close mid-reduce and every batch is committed once", async ({
  browser,
}, testInfo) => {
  test.setTimeout(10 * 60_000);
  const created = await server.api("/api/runs", {
    method: "POST",
    body: JSON.stringify(
      runConfig("MNIST reduced among peers", {
        peers: true,
        reduceGroup: TABS,
        targetUpdates: TABS,
        stop: { epochs: 1 },
      }),
    ),
  });
  expect(created.status).toBe(201);
  const { id: runId } = (await created.json()) as { id: string };
  const context = await browser.newContext();
  const staying: Page[] = [];
  for (let i = 0; i < TABS - 2; i++)
    staying.push((await openContributor(context, server.url, runId)).page);
  // The two tabs that leave mid-reduce: once told to, each holds back its part fetches (the page
  // stops passing the worker's peer.fetchPart requests to its WebRTC network), so that it is
  // certainly in the middle of a reduction when it closes. Everything else is the real code.
  const leavingContext = await browser.newContext();
  await leavingContext.addInitScript(() => {
    const w = window as unknown as { __stall: boolean; __stalled: boolean };
    w.__stall = false;
    w.__stalled = false;
    const Real = window.Worker;
    window.Worker = class extends Real {
      override set onmessage(f: ((e: MessageEvent) => void) | null) {
        super.onmessage = (e: MessageEvent) => {
          if (w.__stall && (e.data as { type?: string })?.type === "peer.fetchPart") {
            w.__stalled = true;
            return;
          }
          f?.call(this, e);
        };
      }
      override get onmessage(): ((e: MessageEvent) => void) | null {
        return super.onmessage;
      }
    } as typeof Worker;
  });
  const leaving = [
    await openContributor(leavingContext, server.url, runId),
    await openContributor(leavingContext, server.url, runId),
  ];

  await expect
    .poll(async () => (await status(runId)).version, { timeout: 180_000 })
    .toBeGreaterThanOrEqual(3);
  for (const tab of leaving)
    await tab.page.evaluate(() => {
      (window as unknown as { __stall: boolean }).__stall = true;
    });
  for (const tab of leaving)
    await tab.page.waitForFunction(
      () => (window as unknown as { __stalled: boolean }).__stalled,
      null,
      {
        timeout: 120_000,
      },
    );
  // Both are in a group that is reducing, which waits for their parts: they close now.
  const mid = await status(runId);
  const sessions = await Promise.all(leaving.map((t) => t.session()));
  expect(mid.reducing?.some((g) => sessions.every((s) => g.members.includes(s)))).toBe(true);
  for (const tab of leaving) await tab.page.close();

  const done = await finished(runId);
  const c = done.counters;
  console.log(
    `reduce: ${done.version} versions, ${c.groupsReduced} groups reduced, ${c.groupFallbacks} fell back; ${(done.traffic.peerBytes / 1e6).toFixed(1)} MB between peers`,
  );
  // The epoch is complete, and each of its batches was committed exactly once.
  expect(done.counters.batchCommits?.["0"]).toBe(done.batchesPerEpoch);
  expect(c.groupFallbacks).toBeGreaterThanOrEqual(1);
  expect(c.groupsReduced).toBeGreaterThanOrEqual(done.version - 3);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  expect(metrics).toMatch(
    new RegExp(`pangea_reduce_groups_total\\{run="${runId}",outcome="fallback"\\} [1-9]`),
  );
  withPeers = await bytesPerSample(runId, done.counters.samples);
  console.log(
    `coordinator bytes per sample with peers: ${(withPeers.in / 1e3).toFixed(2)} kB in, ${(withPeers.out / 1e3).toFixed(2)} kB out`,
  );

  // The dashboard shows the bytes between peers and the groups.
  const dashboard = await context.newPage();
  await signIn(dashboard, server.url, server.token);
  await dashboard.goto(`${server.url}/admin?run=${runId}`);
  await expect(dashboard.getByTestId("peer-bytes")).not.toHaveText("0 B");
  await expect(dashboard.getByTestId("reduce-groups")).toContainText(
    `groups of ${TABS}: ${c.groupsReduced} taken, ${c.groupFallbacks} fell back`,
  );
  await dashboard.screenshot({ path: testInfo.outputPath("dashboard-reduce.png"), fullPage: true });
  await context.close();
  await leavingContext.close();
});

test("the same run without peers: every tab pulls every version and sends every update", async ({
  browser,
}) => {
  // The comparison needs the first test's figures: when that one failed, this says nothing.
  test.skip(!withPeers, "needs the figures of the run with peers");
  test.setTimeout(10 * 60_000);
  const created = await server.api("/api/runs", {
    method: "POST",
    body: JSON.stringify(
      runConfig("MNIST without peers", {
        peers: false,
        targetUpdates: TABS,
        stop: { versions: 8 },
      }),
    ),
  });
  const { id: runId } = (await created.json()) as { id: string };
  const context = await browser.newContext();
  for (let i = 0; i < TABS; i++) await openContributor(context, server.url, runId);
  const done = await finished(runId);
  expect(done.traffic.peerBytes).toBe(0);
  const off = await bytesPerSample(runId, done.counters.samples);
  const on = withPeers!;
  console.log(
    `coordinator bytes per sample: peers off ${(off.in / 1e3).toFixed(2)} kB in, ${(off.out / 1e3).toFixed(2)} kB out; ` +
      `peers on ${(on.in / 1e3).toFixed(2)} kB in, ${(on.out / 1e3).toFixed(2)} kB out (${(off.in / on.in).toFixed(1)}× less in, ${(off.out / on.out).toFixed(1)}× less out)`,
  );
  // Out needs each version's frame to leave the coordinator about once: the six tabs ask for
  // it in one burst, so the holder must wait for a frame still on its way rather than answer
  // "missing", and the sixth is sent to a tab still fetching (peers.ts AWAIT_FRAME_MS,
  // parameter-sources.ts). Without those, out fell only 2.5-3.6x.
  expect(off.in / on.in).toBeGreaterThanOrEqual(3);
  expect(off.out / on.out).toBeGreaterThanOrEqual(3);
  await context.close();
});

test("a tab without WebRTC trains over the WebSocket alone, beside four that share frames and reduce updates", async ({
  browser,
  playwright,
}, testInfo) => {
  test.setTimeout(10 * 60_000);
  const created = await server.api("/api/runs", {
    method: "POST",
    body: JSON.stringify(
      runConfig("MNIST with a tab without WebRTC", {
        peers: true,
        reduceGroup: 4,
        // Every tab's update counts towards each version (the isolated one too, unless it straggles).
        targetUpdates: 5,
        stop: { versions: VERSIONS },
      }),
    ),
  });
  expect(created.status).toBe(201);
  const { id: runId } = (await created.json()) as { id: string };

  const context = await browser.newContext();
  const tabs: Awaited<ReturnType<typeof openContributor>>[] = [];
  for (let i = 0; i < 4; i++) tabs.push(await openContributor(context, server.url, runId));
  // A tab whose WebRTC can never connect: it neither announces ICE candidates nor takes any,
  // as behind a firewall that drops all UDP. (Chromium's --force-webrtc-ip-handling-policy
  // flag still connects over loopback in headless mode, so the page's RTCPeerConnection is
  // wrapped instead; simple-peer and the data channel code are the real ones.)
  const isolated = await playwright.chromium.launch({
    executablePath: chromiumPath,
    args: chromiumArgs,
  });
  const isolatedContext = await isolated.newContext();
  await isolatedContext.addInitScript(() => {
    const strip = (sdp: string) => sdp.replace(/a=candidate[^\r\n]*\r?\n/g, "");
    const Real = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Real {
      constructor(config?: RTCConfiguration) {
        super(config);
        let handler: ((e: RTCPeerConnectionIceEvent) => void) | null = null;
        Object.defineProperty(this, "onicecandidate", {
          get: () => handler,
          set: (f) => {
            handler = f;
            super.onicecandidate = (e) => {
              if (!e.candidate) f?.(e);
            };
          },
        });
      }
      override addIceCandidate(): Promise<void> {
        return Promise.resolve();
      }
      // Candidates also ride in a description gathered so far: strip them both ways.
      override get localDescription(): RTCSessionDescription | null {
        const d = super.localDescription;
        return d && ({ type: d.type, sdp: strip(d.sdp) } as RTCSessionDescription);
      }
      override setRemoteDescription(d: RTCSessionDescriptionInit): Promise<void> {
        return super.setRemoteDescription({ type: d.type, sdp: strip(d.sdp ?? "") });
      }
    } as typeof RTCPeerConnection;
  });
  const alone = await openContributor(isolatedContext, server.url, runId);
  const aloneSession = await alone.session();

  // The tabs see each other.
  await expect
    .poll(
      async () =>
        Number(((await tabs[0]!.page.getByTestId("peers").textContent()) ?? "").split(" ")[0]),
      {
        timeout: 120_000,
      },
    )
    .toBeGreaterThanOrEqual(1);

  const status = await finished(runId);
  expect(status.version).toBe(VERSIONS);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const named = Number(
    /pangea_peer_parameter_frames_total\{outcome="named"\} (\d+)/.exec(metrics)?.[1],
  );
  const fallbacks = [...metrics.matchAll(/outcome="fallback",failure="(\w+)"\} (\d+)/g)];
  const fellBack = fallbacks.reduce((n, m) => n + Number(m[2]), 0);
  const t = status.traffic;
  console.log(
    `peers: ${named} frames named from peers, fallbacks ${fallbacks.map((m) => `${m[1]} ${m[2]}`).join(", ") || "none"}; ` +
      `${(t.peerBytes / 1e6).toFixed(1)} MB between peers, coordinator ${(t.bytesIn / t.samples / 1e3).toFixed(2)} kB in and ${(t.bytesOut / t.samples / 1e3).toFixed(2)} kB out per sample`,
  );
  // The four tabs' groups were reduced once the isolated one stopped being grouped.
  expect(status.counters.groupsReduced ?? 0).toBeGreaterThan(0);
  // Most frames went between the tabs, and bytes went through peers.
  expect(named - fellBack).toBeGreaterThanOrEqual(VERSIONS);
  expect(t.peerBytes).toBeGreaterThan(0);
  // The tab without WebRTC trained, and got nothing from peers (each of its fetches fell back).
  const lone = status.workers.find((w) => w.id === aloneSession)!;
  console.log("the tab without WebRTC:", JSON.stringify(lone));
  expect(lone.updatesAccepted).toBeGreaterThan(0);
  expect(lone.peerBytesIn ?? 0).toBe(0);
  expect(lone.peerBytesOut ?? 0).toBe(0);
  expect(status.workers.some((w) => (w.peerBytesIn ?? 0) > 0)).toBe(true);

  // The dashboard shows the bytes between peers, the run's and each session's.
  const dashboard = await context.newPage();
  await signIn(dashboard, server.url, server.token);
  await dashboard.goto(`${server.url}/admin?run=${runId}`);
  await expect(dashboard.getByTestId("peer-bytes")).not.toHaveText("0 B");
  await expect(
    dashboard.locator(
      `[data-testid=workers] tr[data-session="${aloneSession}"] [data-testid=worker-peer-bytes]`,
    ),
  ).toHaveText("0 B / 0 B");
  await dashboard.screenshot({ path: testInfo.outputPath("dashboard-peers.png"), fullPage: true });
  await isolated.close();
});
