// Small formatters shared by the two pages.
export const percent = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined ? "—" : `${(100 * x).toFixed(digits)}%`;

export const number = (x: number, digits = 0) =>
  x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function ago(ms: number): string {
  if (ms < 1500) return "now";
  if (ms < 90_000) return `${Math.round(ms / 1000)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

/** Bytes as a person reads them: 512 B, 3.4 kB, 12.1 MB. */
export function bytes(n: number): string {
  if (n < 1000) return `${Math.round(n)} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}
