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
