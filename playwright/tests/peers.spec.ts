// Tabs fetch each version's parameters from each other over WebRTC (simple-peer in the page),
// hash-checked, instead of every tab pulling them from the coordinator; a tab whose browser
// cannot make WebRTC connections (no non-proxied UDP, and no proxy) trains over the WebSocket
// alone, its peer fetches falling back to the coordinator.
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { mnistMlp } from "@pangea/shared";
import { chromiumArgs, chromiumPath } from "../../scripts/chromium.ts";
import { expect, test } from "../support/fixtures.ts";
import { openContributor, type RunStatus, signIn } from "../support/pages.ts";

const VERSIONS = 40;

/** The run's config, with or without peers: synchronous, every tab's update in each version. */
const runConfig = (peers: boolean) => ({
  name: peers ? "MNIST with peers" : "MNIST without peers",
  model: mnistMlp,
  dataset: "mnist",
  batchSize: 64,
  // Every tab's update counts towards each version (the isolated one too, unless it straggles).
  strategy: { kind: "synchronous", targetUpdates: 5, stragglerMs: 5_000 },
  optimizer: { kind: "adamw", learningRate: 1e-3 },
  evaluateEvery: 20,
  stop: { versions: VERSIONS },
  peers,
});
/** The coordinator's bytes per sample in the run with peers (the first test). */
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

test("four tabs share parameter frames over WebRTC; a tab without WebRTC trains over the WebSocket", async ({
  browser,
  playwright,
}, testInfo) => {
  test.setTimeout(10 * 60_000);
  const created = await server.api("/api/runs", {
    method: "POST",
    body: JSON.stringify(runConfig(true)),
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

  await expect
    .poll(
      async () => ((await (await server.api(`/api/runs/${runId}`)).json()) as RunStatus).state,
      { timeout: 8 * 60_000, intervals: [2000] },
    )
    .toBe("finished");
  const status = (await (await server.api(`/api/runs/${runId}`)).json()) as Omit<
    RunStatus,
    "workers"
  > & { traffic: Traffic; workers: Worker[] };
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
  withPeers = { in: t.bytesIn / t.samples, out: t.bytesOut / t.samples };
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

test("the same run without peers: every tab pulls every version from the coordinator", async ({
  browser,
}) => {
  // The comparison needs the first test's figures: when that one failed, this says nothing.
  test.skip(!withPeers, "needs the figures of the run with peers");
  test.setTimeout(10 * 60_000);
  const created = await server.api("/api/runs", {
    method: "POST",
    body: JSON.stringify(runConfig(false)),
  });
  const { id: runId } = (await created.json()) as { id: string };
  const context = await browser.newContext();
  for (let i = 0; i < 5; i++) await openContributor(context, server.url, runId);
  await expect
    .poll(
      async () => ((await (await server.api(`/api/runs/${runId}`)).json()) as RunStatus).state,
      { timeout: 8 * 60_000, intervals: [2000] },
    )
    .toBe("finished");
  const { traffic: t } = (await (await server.api(`/api/runs/${runId}`)).json()) as {
    traffic: Traffic;
  };
  const off = { in: t.bytesIn / t.samples, out: t.bytesOut / t.samples };
  const on = withPeers!;
  console.log(
    `coordinator bytes per sample: peers off ${(off.in / 1e3).toFixed(2)} kB in, ${(off.out / 1e3).toFixed(2)} kB out; ` +
      `peers on ${(on.in / 1e3).toFixed(2)} kB in, ${(on.out / 1e3).toFixed(2)} kB out (${(off.out / on.out).toFixed(1)}× less out, ${((off.in + off.out) / (on.in + on.out)).toFixed(2)}× less in and out)`,
  );
  expect(t.peerBytes).toBe(0);
  // Parameters between peers at least halve what leaves the coordinator. (Updates still all come
  // in over the WebSocket: reducing them among peers is the part of issue 15 not built yet.)
  expect(on.out).toBeLessThan(off.out / 2);
  await context.close();
});
