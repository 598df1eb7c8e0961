import { expect, it } from "vitest";
import { mergeExpositions } from "./metrics.ts";

it("merges run objects' expositions: one header per family, run series kept, totals summed", () => {
  const object = (run: string, version: number, bytes: number) =>
    [
      "# HELP pangea_version The run's committed version.",
      "# TYPE pangea_version gauge",
      `pangea_version{run="${run}"} ${version}`,
      "# HELP pangea_bytes_in_total WebSocket bytes received.",
      "# TYPE pangea_bytes_in_total counter",
      `pangea_bytes_in_total ${bytes}`,
      "",
    ].join("\n");
  expect(mergeExpositions([object("a", 3, 100), object("b", 7, 50)])).toBe(
    [
      "# HELP pangea_version The run's committed version.",
      "# TYPE pangea_version gauge",
      'pangea_version{run="a"} 3',
      'pangea_version{run="b"} 7',
      "# HELP pangea_bytes_in_total WebSocket bytes received.",
      "# TYPE pangea_bytes_in_total counter",
      "pangea_bytes_in_total 150",
      "",
    ].join("\n"),
  );
  expect(mergeExpositions([])).toBe("\n");
});
