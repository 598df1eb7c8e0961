// How every Pangea test launches Chromium: Debian's build (never a downloaded one), with WebGPU
// on. On a machine without a GPU, SwiftShader runs WebGPU on the CPU; on one with a GPU the same
// flags use it. PANGEA_CHROMIUM overrides the binary, PANGEA_CHROMIUM_ARGS adds flags.
export const chromiumPath = process.env.PANGEA_CHROMIUM ?? "/usr/bin/chromium";

export const chromiumArgs = [
  "--enable-unsafe-webgpu",
  "--enable-unsafe-swiftshader",
  "--no-sandbox", // CI runs as root
  // The network here is closed: these stop Chromium reaching out at start.
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--no-first-run",
  ...(process.env.PANGEA_CHROMIUM_ARGS?.split(" ").filter(Boolean) ?? []),
];
