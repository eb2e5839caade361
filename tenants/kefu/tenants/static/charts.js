// Hand-written SVG charts for the reports page (no library, no network): a bar chart,
// a line chart with one line per series, and a pie chart.  Each draws into a container
// (replacing what was there) and marks its parts for the browser tests:
// bars rect.bar[data-label][data-value], lines path.line[data-series] with
// circle.point[data-label][data-value], slices path.slice[data-key][data-value];
// every part has a <title> (the browser's tooltip).  null values are gaps, not zeros.

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#1d3557", "#e63946", "#2a9d8f", "#f4a261", "#6a4c93", "#457b9d", "#8ab17d", "#b56576", "#264653", "#e9c46a"];

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function titled(node, text) {
  node.append(svg("title", {}, text));
  return node;
}

function text(x, y, content, attributes = {}) {
  return svg("text", { x, y, "font-size": 11, fill: "#1d2733", ...attributes }, content);
}

/** A "nice" upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten, at least ``max``. */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

function frame(width, height) {
  // Drawn at its natural size (the page's CSS may only shrink it), so labels keep their size.
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", preserveAspectRatio: "xMinYMin meet" });
}

function valueAxis(root, { left, top, plotHeight, plotWidth, top_value, format }) {
  for (let i = 0; i <= 4; i++) {
    const value = (top_value * i) / 4;
    const y = top + plotHeight - (plotHeight * i) / 4;
    root.append(svg("line", { x1: left, x2: left + plotWidth, y1: y, y2: y, stroke: "#e3e7eb" }));
    root.append(text(left - 6, y + 4, format(value), { "text-anchor": "end" }));
  }
}

function empty(container, message) {
  const root = frame(400, 60);
  root.append(text(10, 35, message, { class: "chart-empty" }));
  container.replaceChildren(root);
  return root;
}

/** Bars of ``values`` (numbers or null) labelled ``labels``; ``format`` renders a value. */
export function barChart(container, { labels, values, format = String, emptyText = "—" }) {
  if (!values.some((v) => v !== null && v !== undefined)) return empty(container, emptyText);
  const width = Math.max(400, 60 + labels.length * 48), height = 260;
  const left = 56, top = 12, plotHeight = 170, plotWidth = width - left - 10;
  const topValue = niceMax(Math.max(...values.filter((v) => v !== null && v !== undefined)));
  const root = frame(width, height);
  valueAxis(root, { left, top, plotHeight, plotWidth, top_value: topValue, format });
  const slot = plotWidth / labels.length;
  labels.forEach((label, i) => {
    const value = values[i];
    const x = left + i * slot;
    root.append(text(x + slot / 2, top + plotHeight + 14, label, {
      "text-anchor": "end", transform: `rotate(-35 ${x + slot / 2} ${top + plotHeight + 14})`,
    }));
    if (value === null || value === undefined) return;
    const h = (plotHeight * value) / topValue;
    const bar = svg("rect", {
      class: "bar", x: x + slot * 0.15, y: top + plotHeight - h, width: slot * 0.7, height: Math.max(h, 0.5),
      fill: PALETTE[0], "data-label": label, "data-value": value,
    });
    root.append(titled(bar, `${label}: ${format(value)}`));
  });
  container.replaceChildren(root);
  return root;
}

/** One line per series over the shared ``labels`` (x axis); ``series``: [{name, values}]. */
export function lineChart(container, { labels, series, format = String, emptyText = "—" }) {
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  if (!all.length) return empty(container, emptyText);
  const width = Math.max(400, 80 + labels.length * 40), legendRows = Math.ceil(series.length / 3);
  const left = 56, top = 12, plotHeight = 170, plotWidth = width - left - 20;
  const height = top + plotHeight + 60 + legendRows * 16;
  const topValue = niceMax(Math.max(...all));
  const root = frame(width, height);
  valueAxis(root, { left, top, plotHeight, plotWidth, top_value: topValue, format });
  const x = (i) => left + (labels.length === 1 ? plotWidth / 2 : (plotWidth * i) / (labels.length - 1));
  const y = (value) => top + plotHeight - (plotHeight * value) / topValue;
  labels.forEach((label, i) => root.append(text(x(i), top + plotHeight + 14, label, {
    "text-anchor": "end", transform: `rotate(-35 ${x(i)} ${top + plotHeight + 14})`,
  })));
  series.forEach((s, n) => {
    const colour = PALETTE[n % PALETTE.length];
    let d = "", pen = "M";
    s.values.forEach((value, i) => {
      if (value === null || value === undefined) { pen = "M"; return; }
      d += `${pen}${x(i).toFixed(1)},${y(value).toFixed(1)} `;
      pen = "L";
    });
    root.append(titled(svg("path", { class: "line", d: d.trim(), fill: "none", stroke: colour, "stroke-width": 2, "data-series": s.name }), s.name));
    s.values.forEach((value, i) => {
      if (value === null || value === undefined) return;
      const point = svg("circle", { class: "point", cx: x(i), cy: y(value), r: 3, fill: colour, "data-series": s.name, "data-label": labels[i], "data-value": value });
      root.append(titled(point, `${s.name} · ${labels[i]}: ${format(value)}`));
    });
    const lx = left + (n % 3) * (plotWidth / 3), ly = height - legendRows * 16 + Math.floor(n / 3) * 16;
    root.append(svg("rect", { x: lx, y: ly - 9, width: 10, height: 10, fill: colour }), text(lx + 14, ly, s.name, { class: "legend" }));
  });
  container.replaceChildren(root);
  return root;
}

/** Slices [{key, label, value}] of a whole; zero slices are left out, the legend keeps them. */
export function pieChart(container, { slices, format = String, emptyText = "—" }) {
  const total = slices.reduce((sum, s) => sum + (s.value > 0 ? s.value : 0), 0);
  if (!(total > 0)) return empty(container, emptyText);
  const width = 560, height = Math.max(200, 30 + slices.length * 20), cx = 100, cy = 100, r = 90;
  const root = frame(width, height);
  let angle = -Math.PI / 2;
  slices.forEach((s, n) => {
    const colour = PALETTE[n % PALETTE.length];
    const share = s.value > 0 ? s.value / total : 0;
    const label = `${s.label}: ${format(s.value)} (${(100 * share).toFixed(1)} %)`;
    if (share > 0) {
      let shape;
      if (share >= 0.999999) {
        shape = svg("circle", { cx, cy, r });
      } else {
        const end = angle + share * 2 * Math.PI;
        const [x1, y1, x2, y2] = [cx + r * Math.cos(angle), cy + r * Math.sin(angle), cx + r * Math.cos(end), cy + r * Math.sin(end)];
        shape = svg("path", { d: `M${cx},${cy} L${x1.toFixed(2)},${y1.toFixed(2)} A${r},${r} 0 ${share > 0.5 ? 1 : 0} 1 ${x2.toFixed(2)},${y2.toFixed(2)} Z` });
        angle = end;
      }
      for (const [name, value] of Object.entries({ class: "slice", fill: colour, stroke: "#fff", "data-key": s.key, "data-value": s.value })) shape.setAttribute(name, String(value));
      root.append(titled(shape, label));
    }
    root.append(svg("rect", { x: 215, y: 16 + n * 20, width: 12, height: 12, fill: colour }), text(233, 26 + n * 20, label, { class: "legend", "data-key": s.key }));
  });
  container.replaceChildren(root);
  return root;
}
