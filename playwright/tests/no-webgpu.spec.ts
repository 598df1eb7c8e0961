// A browser without WebGPU: the contributor page says so plainly, names browsers that would work,
// offers no button, and throws nothing.
import { expect, test } from "@playwright/test";
import { type ServerProcess, serverProcess } from "@pangea/coordinator/server-process";
import { chromiumArgs, chromiumPath } from "../../scripts/chromium.ts";

let server: ServerProcess;
test.beforeAll(async () => {
  server = await serverProcess({ demo: true });
});
test.afterAll(async () => {
  await server?.dispose();
});

test("without WebGPU the page shows the plain message and does not crash", async ({
  playwright,
}) => {
  // The same Chromium without the flags that turn WebGPU on, and with the GPU off.
  const browser = await playwright.chromium.launch({
    executablePath: chromiumPath,
    args: [
      ...chromiumArgs.filter((a) => !/webgpu|swiftshader/.test(a)),
      "--disable-gpu",
      "--disable-features=WebGPU",
    ],
  });
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.url}/`);
  const message = page.getByTestId("unsupported");
  await expect(message).toContainText("no WebGPU");
  await expect(message).toContainText("Chrome or Edge 113");
  await expect(page.getByTestId("start")).toHaveCount(0);
  expect(errors).toEqual([]);
  await browser.close();
});
