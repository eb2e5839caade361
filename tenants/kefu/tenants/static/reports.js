// The reports page (docs/staffing.md, "The reports page"): the historical report of
// GET /api/v1/reports (dimension, interval, dates, filters) as a table and three charts
// (./charts.js: a KPI per period or per queue/team/agent, its trend, call outcomes),
// CSV and XLSX downloads (fetched with the bearer token, saved from a blob), agent rankings,
// repeat callers, and the staffing calculator (POST /api/v1/staffing/erlang-c and /workload).
// Rows: #report-table tr[data-period][data-id] td[data-key]; #rankings-table tr[data-agent-id];
// #repeat-callers-table tr[data-caller].
import { $, ApiError, api, el, fetchBlob, logOut, showError, signedInPage, t } from "./common.js";
import { barChart, lineChart, pieChart } from "./charts.js";

// The KPI keys of the reports API (docs/reports.md), for rankings before a report has loaded.
const KPI_KEYS = [
  "total_calls", "answered", "abandoned", "short_abandoned", "blocked", "answer_rate", "service_level", "asa_s", "abandon_rate",
  "avg_time_to_abandon_s", "aht_s", "avg_talk_s", "avg_hold_s", "avg_acw_s", "transfer_rate", "fcr_rate", "calls_per_logged_in_hour",
  "occupancy", "adherence", "ivr_containment", "callbacks", "voicemails",
];
const RATE_KEYS = ["service_level", "occupancy", "adherence", "ivr_containment"];
const MAX_LINES = 8;
const FILTERS = { "report-queue": "queue_id", "report-team": "team_id", "report-agent": "agent_id" };
const FILTERS_BY_DIMENSION = { tenant: ["queue_id"], queue: ["queue_id"], team: ["team_id"], agent: ["team_id", "agent_id"] };

let report = null;

/** A KPI column's name in the page's language (i18n ``kpi_<key>``), else the API's label. */
function kpiLabel(column) {
  const key = `kpi_${column.key}`;
  const text = t(key);
  return text === key ? column.label : text;
}

function isoDate(date) {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
}

function isPercent(unit) {
  return unit === "%" || unit === "percent";
}

function isSeconds(unit) {
  return unit === "s" || unit === "seconds";
}

/** A KPI value for people: percentages with one decimal, seconds with "s", null as a dash. */
function formatValue(value, unit) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (isPercent(unit)) return `${value.toFixed(1)} %`;
  if (isSeconds(unit)) return `${Math.round(value * 10) / 10} s`;
  return String(Math.round(value * 100) / 100);
}

function unitOf(key) {
  const column = report && report.columns.find((c) => c.key === key);
  if (column) return column.unit;
  return key.endsWith("_rate") || RATE_KEYS.includes(key) ? "%" : key.endsWith("_s") ? "s" : "";
}

/** A period's start (the tenant's local ISO time) shortened for the interval; kept in the tenant's zone. */
function periodLabel(periodStart, interval) {
  if (interval === "month") return periodStart.slice(0, 7);
  if (interval === "day" || interval === "week") return periodStart.slice(0, 10);
  return periodStart.slice(5, 16).replace("T", " ");
}

function reportParams() {
  const params = new URLSearchParams({
    dimension: $("report-dimension").value, interval: $("report-interval").value, from: $("report-from").value, to: $("report-to").value,
  });
  for (const [id, name] of Object.entries(FILTERS)) {
    if ($(id).value && !$(id).disabled) params.set(name, $(id).value);
  }
  return params;
}

/** Only the filters the API takes for the chosen dimension can be chosen (docs/reports.md). */
function enableFilters() {
  const allowed = FILTERS_BY_DIMENSION[$("report-dimension").value];
  for (const [id, name] of Object.entries(FILTERS)) {
    $(id).disabled = !allowed.includes(name);
    if ($(id).disabled) $(id).value = "";
  }
}

function rangeParams() {
  return new URLSearchParams({ from: $("report-from").value, to: $("report-to").value });
}

// --- the report table --------------------------------------------------------------------

function renderTable() {
  const withName = report.dimension !== "tenant";
  const head = el("tr", {}, el("th", { textContent: t("rep_period") }));
  if (withName) head.append(el("th", { textContent: t(`rep_dim_${report.dimension}`) }));
  for (const column of report.columns) {
    const unit = isPercent(column.unit) ? " (%)" : isSeconds(column.unit) ? " (s)" : "";
    head.append(el("th", { textContent: kpiLabel(column) + unit }));
  }
  $("report-table").querySelector("thead").replaceChildren(head);
  const rows = report.rows.map((row) => {
    const tr = el("tr", {}, el("td", { textContent: periodLabel(row.period_start, report.interval) }));
    tr.dataset.period = row.period_start;
    if (row.id !== undefined && row.id !== null) tr.dataset.id = row.id;
    if (withName) tr.append(el("td", { textContent: row.name || "" }));
    for (const column of report.columns) {
      const td = el("td", { textContent: formatValue(row[column.key], column.unit) });
      td.dataset.key = column.key;
      tr.append(td);
    }
    return tr;
  });
  $("report-table").querySelector("tbody").replaceChildren(...rows);
  $("no-report-rows").hidden = rows.length > 0;
  $("report-time-zone").hidden = !report.time_zone;
  $("report-time-zone").querySelector("code").textContent = report.time_zone || "";
}

// --- charts ------------------------------------------------------------------------------

function periods() {
  return [...new Set(report.rows.map((row) => row.period_start))].sort();
}

function fillChartControls() {
  const metric = $("chart-metric");
  const wanted = metric.value || "total_calls";
  metric.replaceChildren(...report.columns.map((c) => new Option(kpiLabel(c), c.key)));
  metric.value = report.columns.some((c) => c.key === wanted) ? wanted : (report.columns[0] || {}).key || "";
  const period = $("chart-period");
  const all = periods();
  period.replaceChildren(...all.map((p) => new Option(periodLabel(p, report.interval), p)));
  period.value = all[all.length - 1] || "";
  period.closest("label").hidden = report.dimension === "tenant";
}

function renderCharts() {
  $("charts-card").hidden = false;
  const key = $("chart-metric").value;
  const unit = unitOf(key);
  const format = (value) => formatValue(value, unit);
  const all = periods();
  const emptyText = t("rep_no_rows");
  if (report.dimension === "tenant") {
    const byPeriod = Object.fromEntries(report.rows.map((row) => [row.period_start, row[key]]));
    barChart($("bar-chart"), { labels: all.map((p) => periodLabel(p, report.interval)), values: all.map((p) => byPeriod[p] ?? null), format, emptyText });
  } else {
    const rows = report.rows.filter((row) => row.period_start === $("chart-period").value);
    barChart($("bar-chart"), { labels: rows.map((row) => row.name || String(row.id)), values: rows.map((row) => row[key] ?? null), format, emptyText });
  }
  const entities = new Map();
  for (const row of report.rows) {
    const id = report.dimension === "tenant" ? "tenant" : String(row.id);
    if (!entities.has(id)) entities.set(id, { name: report.dimension === "tenant" ? t("rep_dim_tenant") : row.name || id, byPeriod: {} });
    entities.get(id).byPeriod[row.period_start] = row[key];
  }
  const series = [...entities.values()].slice(0, MAX_LINES).map((e) => ({ name: e.name, values: all.map((p) => e.byPeriod[p] ?? null) }));
  lineChart($("line-chart"), { labels: all.map((p) => periodLabel(p, report.interval)), series, format, emptyText });
  pieChart($("pie-chart"), { slices: outcomeSlices(report.rows), emptyText });
}

/** Call outcomes summed over the table's rows.  Without a count of IVR-contained calls in the
 * report, the rest of total_calls is shown as "IVR-contained and other". */
function outcomeSlices(rows) {
  const sum = (key) => rows.reduce((total, row) => total + (typeof row[key] === "number" ? row[key] : 0), 0);
  const [total, answered, abandoned, short, blocked, voicemails] = ["total_calls", "answered", "abandoned", "short_abandoned", "blocked", "voicemails"].map(sum);
  const hasContained = rows.some((row) => typeof row.ivr_contained === "number");
  const contained = hasContained ? sum("ivr_contained") : Math.max(0, total - answered - abandoned - blocked - voicemails);
  return [
    { key: "answered", label: t("rep_out_answered"), value: answered },
    { key: "abandoned", label: t("rep_out_abandoned"), value: Math.max(0, abandoned - short) },
    { key: "short_abandoned", label: t("rep_out_short"), value: short },
    { key: "blocked", label: t("rep_out_blocked"), value: blocked },
    { key: "ivr_contained", label: t(hasContained ? "rep_out_ivr_contained" : "rep_out_ivr_contained_other"), value: contained },
    { key: "voicemails", label: t("rep_out_voicemail"), value: voicemails },
  ];
}

async function runReport() {
  report = await api("GET", `/api/v1/reports?${reportParams()}`);
  renderTable();
  fillChartControls();
  fillRankingMetrics();
  renderCharts();
}

// --- downloads, rankings, repeat callers ------------------------------------------------------

async function download(format) {
  const blob = await fetchBlob(`/api/v1/reports?${reportParams()}&format=${format}`);
  const a = el("a", {
    href: URL.createObjectURL(blob), download: `report-${$("report-dimension").value}-${$("report-interval").value}-${$("report-from").value}-${$("report-to").value}.${format}`,
  });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

function fillRankingMetrics() {
  const select = $("ranking-metric");
  const wanted = select.value || "aht_s";
  const options = report ? report.columns.map((c) => new Option(kpiLabel(c), c.key)) : KPI_KEYS.map((key) => new Option(kpiLabel({ key, label: key }), key));
  select.replaceChildren(...options);
  select.value = [...select.options].some((o) => o.value === wanted) ? wanted : (select.options[0] || {}).value || "";
}

async function runRankings() {
  const params = rangeParams();
  params.set("metric", $("ranking-metric").value);
  params.set("order", $("ranking-order").value);
  const result = await api("GET", `/api/v1/reports/rankings?${params}`);
  const unit = unitOf($("ranking-metric").value);
  $("rankings-table").querySelector("tbody").replaceChildren(...result.rows.map((row) => {
    const tr = el("tr", {}, el("td", { textContent: String(row.rank) }), el("td", { textContent: row.name || "" }), el("td", { textContent: formatValue(row.value, unit) }));
    tr.dataset.agentId = row.agent_id;
    return tr;
  }));
}

async function runRepeatCallers() {
  const params = rangeParams();
  params.set("min_calls", $("repeat-min-calls").value || "2");
  const result = await api("GET", `/api/v1/reports/repeat-callers?${params}`);
  $("repeat-callers-table").querySelector("tbody").replaceChildren(...result.rows.map((row) => {
    const tr = el("tr", {}, el("td", { textContent: row.caller }), el("td", { textContent: String(row.calls) }),
      el("td", { textContent: new Date(row.first_at).toLocaleString() }), el("td", { textContent: new Date(row.last_at).toLocaleString() }));
    tr.dataset.caller = row.caller;
    return tr;
  }));
}

// --- the staffing calculator --------------------------------------------------------------

const STAFFING_FIELDS = {
  calls: "staff-calls", interval_minutes: "staff-interval", aht_s: "staff-aht", target_percent: "staff-target-percent",
  target_s: "staff-target-s", shrinkage_percent: "staff-shrinkage",
};
const WORKLOAD_FIELDS = {
  monthly_calls: "workload-calls", aht_s: "workload-aht", answer_rate_percent: "workload-answer-rate",
  monthly_hours_per_agent: "workload-hours", attendance_percent: "workload-attendance", utilisation_percent: "workload-utilisation",
};

async function calculate(path, fields, resultId, show) {
  showError("", "staff-error");
  for (const id of Object.values(fields)) $(id).removeAttribute("aria-invalid");
  const body = Object.fromEntries(Object.entries(fields).map(([name, id]) => [name, Number($(id).value)]));
  try {
    show(await api("POST", path, body));
    $(resultId).hidden = false;
  } catch (error) {
    $(resultId).hidden = true;
    if (error instanceof ApiError && error.body && fields[error.body.field]) $(fields[error.body.field]).setAttribute("aria-invalid", "true");
    showError(error.message, "staff-error");
  }
}

function showStaffing(result) {
  $("staff-traffic").textContent = `${result.traffic_erlangs} ${t("staff_erlangs")}`;
  $("staff-on-phones").textContent = String(result.agents_on_phones);
  $("staff-scheduled").textContent = String(result.agents_scheduled);
  $("staff-service-level").textContent = `${result.service_level_percent.toFixed(2)} %`;
  $("staff-asa").textContent = `${result.asa_s.toFixed(2)} s`;
  $("staff-occupancy").textContent = result.occupancy_percent === null ? "—" : `${result.occupancy_percent.toFixed(2)} %`;
  $("staff-pwait").textContent = `${(100 * result.probability_of_waiting).toFixed(2)} %`;
}

function showWorkload(result) {
  $("workload-hours-out").textContent = `${result.workload_hours} h`;
  $("workload-productive").textContent = `${result.productive_hours_per_agent} h`;
  $("workload-exact").textContent = String(result.agents_exact);
  $("workload-agents").textContent = String(result.agents);
}

// --- start ------------------------------------------------------------------------------

async function fillFilters() {
  const [queues, teams, agents] = await Promise.all([
    api("GET", "/api/v1/queues").catch(() => []),
    api("GET", "/api/v1/teams").catch(() => []),
    api("GET", "/api/v1/agents").catch(() => []),
  ]);
  const lists = [["report-queue", queues, (q) => q.name], ["report-team", teams, (team) => team.name], ["report-agent", agents, (a) => a.display_name]];
  for (const [id, items, name] of lists) {
    const select = $(id);
    select.replaceChildren(select.options[0], ...items.map((item) => new Option(name(item), item.id)));
  }
}

/** Run one part of the page; a failure shows in #error and leaves the other parts working. */
async function attempt(work) {
  try { await work(); } catch (error) { showError(error.message); }
}

async function start() {
  await api("GET", "/api/v1/me");
  $("login-form").hidden = true;
  $("reports").hidden = false;
  const today = new Date();
  $("report-to").value = isoDate(today);
  $("report-from").value = isoDate(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6));
  fillRankingMetrics();
  await fillFilters();
  enableFilters();
  await attempt(runReport);
  await attempt(runRankings);
  await attempt(runRepeatCallers);
}

function onSubmit(id, work) {
  $(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    await attempt(work);
  });
}

onSubmit("report-form", runReport);
onSubmit("rankings-form", runRankings);
onSubmit("repeat-form", runRepeatCallers);
$("report-dimension").addEventListener("change", enableFilters);
for (const id of ["chart-metric", "chart-period"]) $(id).addEventListener("change", () => { if (report) renderCharts(); });
$("download-csv").addEventListener("click", () => { showError(""); attempt(() => download("csv")); });
$("download-xlsx").addEventListener("click", () => { showError(""); attempt(() => download("xlsx")); });
$("staffing-form").addEventListener("submit", (event) => {
  event.preventDefault();
  calculate("/api/v1/staffing/erlang-c", STAFFING_FIELDS, "staffing-result", showStaffing);
});
$("workload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  calculate("/api/v1/staffing/workload", WORKLOAD_FIELDS, "workload-result", showWorkload);
});
$("logout-button").addEventListener("click", () => logOut());

signedInPage(start);
