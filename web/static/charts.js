// The operations charts: events/s, push latency and prequential recall over the last minutes,
// drawn with uPlot, which the app serves itself from /static/vendor (scripts/build-assets.sh).
// Without those files the page goes on without charts and says why.

const VENDOR = "/static/vendor";
const KEEP = 240; // one point a second: the last four minutes
const HEIGHT = 124;
const AXIS = { stroke: "#6b7280", font: "11px system-ui, sans-serif", labelFont:
  "600 11px system-ui, sans-serif" };
const GRID = { stroke: "#eef0f4", width: 1 };

/** Load a file of the app's own by a <script> or <link> element (CSP: 'self' only). */
function load(tag, attrs) {
  return new Promise((resolve, reject) => {
    const el = document.createElement(tag);
    Object.assign(el, attrs);
    el.onload = resolve;
    el.onerror = () => reject(new Error(`${attrs.src ?? attrs.href} did not load`));
    document.head.append(el);
  });
}

let library = null;
function uPlotLibrary() {
  library ??= Promise.all([
    load("link", { rel: "stylesheet", href: `${VENDOR}/uPlot.min.css` }),
    load("script", { src: `${VENDOR}/uPlot.iife.min.js` }),
  ]).then(() => {
    if (typeof window.uPlot !== "function") throw new Error("uPlot did not define itself");
    return window.uPlot;
  });
  return library;
}

const clock = (t) => new Date(t * 1000).toLocaleTimeString([], {
  hour: "2-digit", minute: "2-digit", second: "2-digit" });

function axes(label, values) {
  return [
    { ...AXIS, grid: GRID, ticks: { show: false }, space: 80, size: 24,
      values: (u, ticks) => ticks.map(clock) },
    { ...AXIS, grid: GRID, ticks: { show: false }, label, labelSize: 16, size: 46, values },
  ];
}

const SPECS = {
  rate: {
    label: "events / s",
    series: [{ label: "events/s", stroke: "#4f46e5", fill: "rgb(79 70 229 / 12%)" }],
    y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
    fmt: (v) => (v == null ? "–" : v.toFixed(v < 10 ? 1 : 0)),
  },
  latency: {
    label: "push latency (ms)",
    series: [
      { label: "p50", stroke: "#0ea5e9" },
      { label: "p99", stroke: "#f43f5e", dash: [5, 4] },
    ],
    y: { range: (u, min, max) => [0, Math.max(1, (max ?? 1) * 1.15)] },
    fmt: (v) => (v == null ? "–" : `${v.toFixed(v < 10 ? 1 : 0)} ms`),
  },
  recall: {
    label: "prequential recall",
    series: [
      { label: "clicks", stroke: "#0ea5e9" },
      { label: "carts", stroke: "#f59e0b" },
      { label: "orders", stroke: "#10b981" },
    ],
    y: { range: [0, 1] },
    fmt: (v) => (v == null ? "–" : v.toFixed(3)),
  },
};

export class OpsCharts {
  /** ``boxes``: {rate, latency, recall} elements to draw in; ``note``: shown on failure. */
  constructor(boxes, note) {
    this.boxes = boxes;
    this.note = note;
    this.x = [];
    this.data = { rate: [[]], latency: [[], []], recall: [[], [], []] };
    this.plots = null;
    this.failed = false;
  }

  async start() {
    let uPlot;
    try {
      uPlot = await uPlotLibrary();
    } catch (error) {
      this.failed = true;
      this.note.hidden = false;
      for (const box of Object.values(this.boxes)) box.closest("figure").hidden = true;
      console.warn("operations charts unavailable", error);
      return;
    }
    this.plots = {};
    for (const [name, spec] of Object.entries(SPECS)) {
      const box = this.boxes[name];
      const opts = {
        width: Math.max(200, box.clientWidth), height: HEIGHT, padding: [8, 30, 0, 0],
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false }, points: { size: 6 } },
        scales: { x: { time: true }, y: spec.y },
        axes: axes(spec.label, (u, ticks) => ticks.map((t) => spec.fmt(t).replace(" ms", ""))),
        series: [{ label: "time" }, ...spec.series.map((s) => ({
          width: 2, points: { show: false }, value: (u, v) => spec.fmt(v), ...s,
        }))],
      };
      this.plots[name] = new uPlot(opts, [this.x, ...this.data[name]], box);
    }
    // Charts follow their boxes' width (the column narrows with the window).
    const resize = new ResizeObserver(() => {
      for (const [name, plot] of Object.entries(this.plots)) {
        const width = this.boxes[name].clientWidth;
        if (width > 0 && Math.abs(width - plot.width) > 2) plot.setSize({ width, height: HEIGHT });
      }
    });
    for (const box of Object.values(this.boxes)) resize.observe(box);
  }

  /** Add one /stats sample. Missing figures are gaps, not zeros. */
  add(stats) {
    const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
    this.x.push(Date.now() / 1000);
    this.data.rate[0].push(num(stats.events_per_s));
    this.data.latency[0].push(num(stats.latency_ms?.p50));
    this.data.latency[1].push(num(stats.latency_ms?.p99));
    ["clicks", "carts", "orders"].forEach((type, i) => {
      this.data.recall[i].push(num(stats.recall?.[type]));
    });
    if (this.x.length > KEEP) {
      this.x.shift();
      for (const series of Object.values(this.data)) series.forEach((s) => s.shift());
    }
    if (!this.plots) return;
    for (const [name, plot] of Object.entries(this.plots)) {
      // Drawing a hidden chart is wasted work; it catches up when shown.
      if (plot.root.offsetParent !== null) plot.setData([this.x, ...this.data[name]]);
    }
  }

  /** Redraw after the charts were shown again (they skip updates while hidden). */
  refresh() {
    if (!this.plots) return;
    for (const [name, plot] of Object.entries(this.plots)) {
      const width = this.boxes[name].clientWidth;
      if (width > 0) plot.setSize({ width, height: HEIGHT });
      plot.setData([this.x, ...this.data[name]]);
    }
  }
}
