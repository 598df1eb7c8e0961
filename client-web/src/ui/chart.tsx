// A live line chart on uPlot: x values and one or more series, redrawn in place as data grows.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
  /** Which y scale (two charts share the x axis: accuracy 0..1 and loss). */
  scale?: string;
}

export function LineChart(props: {
  title: string;
  x: number[];
  series: Series[];
  xLabel: string;
  height?: number;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = props.series.map((s) => `${s.label}:${s.scale ?? "y"}`).join();

  // biome-ignore lint/correctness/useExhaustiveDependencies: the chart is rebuilt only when its series change shape
  useEffect(() => {
    const el = box.current!;
    const u = new uPlot(
      {
        title: props.title,
        width: Math.max(280, el.clientWidth),
        height: props.height ?? 220,
        scales: { x: { time: false } },
        // One axis per scale: the first on the left, a second (workers beside samples/s) right.
        axes: [
          { label: props.xLabel },
          ...[...new Set(props.series.map((s) => s.scale ?? "y"))].map((scale, i) => ({
            scale,
            side: i === 0 ? 3 : 1,
            size: 60,
            grid: { show: i === 0 },
          })),
        ],
        series: [
          { label: props.xLabel },
          ...props.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            scale: s.scale ?? "y",
            spanGaps: true,
          })),
        ],
      },
      [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    plot.current = u;
    const resize = () =>
      u.setSize({ width: Math.max(280, el.clientWidth), height: props.height ?? 220 });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      u.destroy();
      plot.current = null;
    };
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData);
  });

  return (
    <div className="chart" ref={box} data-testid={props.testId} data-points={props.x.length} />
  );
}
