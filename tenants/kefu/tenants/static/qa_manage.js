// The QA page's team-lead parts (docs/qa.md): calibrations (several reviewers score the
// same call; the results show each reviewer's answer and the spread per question), QA
// reports (average score, count and auto-fail rate per agent, team, queue or question and
// period) and sampling policies (N calls per agent per period, filters, reviewers; run now).
// Markup: #calibrations-table tr[data-calibration-id] (.score-calibration-button,
// .calibration-results-button); #calibration-results-table tr[data-question-id] (.spread);
// #reports-table tr; #policies-table tr[data-policy-id] (.run-policy-button).
import { $, api, el, showError, t } from "./common.js";

function act(className, label, handler) {
  const b = el("button", { type: "button", className, textContent: label });
  b.addEventListener("click", async () => {
    showError("");
    try { await handler(); } catch (error) { showError(error.message); }
  });
  return b;
}

function checkboxes(fieldset, items) {
  fieldset.replaceChildren(fieldset.firstElementChild, ...items.map(([value, text]) => {
    const box = el("input", { type: "checkbox", value });
    return el("label", {}, box, ` ${text}`);
  }));
}

function checked(fieldset) {
  return [...fieldset.querySelectorAll("input:checked")].map((box) => box.value);
}

function shown(value) {
  return value === null || value === undefined ? "—" : String(value);
}

// --- calibrations ----------------------------------------------------------------------------

export async function loadCalibrations({ onScore }) {
  const list = await api("GET", "/api/v1/qa/calibrations");
  $("calibrations").hidden = false;
  $("calibrations-table").querySelector("tbody").replaceChildren(...list.map((c) => {
    const done = c.reviewers.filter((r) => r.submitted).length;
    const actions = el("span", { className: "actions" });
    if (c.status === "open") actions.append(act("score-calibration-button", t("score_it"), async () => onScore(await api("POST", `/api/v1/qa/calibrations/${c.id}/evaluation`))));
    actions.append(act("calibration-results-button", t("results"), () => showResults(c.id)));
    const tr = el("tr", {}, el("td", { textContent: c.title }), el("td", {}, el("code", { textContent: c.call_serial })),
      el("td", { textContent: c.status }), el("td", { className: "submitted", textContent: `${done} / ${c.reviewers.length}` }), el("td", {}, actions));
    tr.dataset.calibrationId = c.id;
    return tr;
  }));
}

async function showResults(calibrationId) {
  const results = await api("GET", `/api/v1/qa/calibrations/${calibrationId}/results`);
  const reviewers = results.totals.map((total) => [total.reviewer_id, total.reviewer_name]);
  $("calibration-results").hidden = false;
  $("calibration-results-serial").textContent = results.call_serial;
  const table = $("calibration-results-table");
  table.querySelector("thead").replaceChildren(el("tr", {}, el("th", { textContent: t("question") }),
    ...reviewers.map(([, name]) => el("th", { textContent: name })), el("th", { textContent: t("spread") }), el("th", { textContent: t("stdev") })));
  const rows = results.questions.map((q) => {
    const byReviewer = Object.fromEntries(q.answers.map((a) => [a.reviewer_id, a]));
    const tr = el("tr", { className: q.agreed ? "agreed" : "disagreed" }, el("td", { textContent: q.text }),
      ...reviewers.map(([id]) => el("td", { textContent: byReviewer[id] ? `${shown(byReviewer[id].value)} (${shown(byReviewer[id].score)})` : "—" })),
      el("td", { className: "spread", textContent: shown(q.spread.range) }), el("td", { className: "stdev", textContent: shown(q.spread.stdev) }));
    tr.dataset.questionId = q.question_id;
    return tr;
  });
  const totals = Object.fromEntries(results.totals.map((total) => [total.reviewer_id, total]));
  const total = el("tr", { className: "totals" }, el("th", { textContent: t("total_score") }),
    ...reviewers.map(([id]) => el("td", { textContent: `${shown(totals[id].total_score)} ${totals[id].grade || ""}` })),
    el("td", { className: "spread", textContent: shown(results.total_spread.range) }), el("td", { className: "stdev", textContent: shown(results.total_spread.stdev) }));
  table.querySelector("tbody").replaceChildren(...rows, total);
}

/** The evaluation panel's "calibrate this call" form (reviewers need the user directory). */
export async function offerCalibration(evaluation, refresh) {
  const form = $("calibration-form");
  let users;
  try { users = (await api("GET", "/api/v1/users?limit=200")).items; } catch { form.hidden = true; return; }
  const reviewers = users.filter((u) => u.roles.some((role) => ["qa_reviewer", "supervisor", "tenant_admin"].includes(role)));
  checkboxes($("calibration-reviewers"), reviewers.map((u) => [u.id, u.display_name]));
  form.hidden = false;
  form.onsubmit = async (event) => {
    event.preventDefault();
    showError("");
    try {
      const [call] = evaluation.calls;
      await api("POST", "/api/v1/qa/calibrations", { call_id: call.call_id, scorecard_id: evaluation.scorecard_id, reviewer_ids: checked($("calibration-reviewers")) });
      await refresh();
    } catch (error) { showError(error.message); }
  };
}

// --- reports -----------------------------------------------------------------------------------

export function installReports() {
  $("reports").hidden = false;
  $("reports-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    try { await showReport(); } catch (error) { showError(error.message); }
  });
  return showReport();
}

async function showReport() {
  const params = new URLSearchParams({ group_by: $("report-group").value, bucket: $("report-bucket").value });
  if ($("report-from").value) params.set("from", new Date(`${$("report-from").value}T00:00:00`).toISOString());
  if ($("report-to").value) params.set("to", new Date(`${$("report-to").value}T00:00:00`).toISOString());
  const report = await api("GET", `/api/v1/qa/reports?${params}`);
  const rows = report.rows.map((r) => el("tr", {}, el("td", { textContent: new Date(r.bucket_start).toLocaleDateString() }),
    el("td", { className: "name", textContent: r.name || r.key || "—" }), el("td", { textContent: String(r.evaluations) }),
    el("td", { className: "average", textContent: shown(r.average_score) }), el("td", { className: "auto-fail", textContent: `${Math.round(r.auto_fail_rate * 1000) / 10}%` })));
  $("reports-table").querySelector("tbody").replaceChildren(...rows);
}

// --- sampling policies -----------------------------------------------------------------------------

export async function installPolicies() {
  $("policies").hidden = false;
  const [scorecards, queues, users] = await Promise.all([
    api("GET", "/api/v1/qa/scorecards"), api("GET", "/api/v1/queues"), api("GET", "/api/v1/users?limit=200"),
  ]);
  $("policy-scorecard").replaceChildren(...scorecards.filter((s) => s.published_version !== null).map((s) => new Option(s.name, s.id)));
  checkboxes($("policy-queues"), queues.map((q) => [q.id, q.name]));
  const reviewers = users.items.filter((u) => u.roles.some((role) => ["qa_reviewer", "supervisor", "tenant_admin"].includes(role)));
  checkboxes($("policy-reviewers"), reviewers.map((u) => [u.id, u.display_name]));
  const names = { scorecards: Object.fromEntries(scorecards.map((s) => [s.id, s.name])), users: Object.fromEntries(users.items.map((u) => [u.id, u.display_name])) };
  $("policy-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    try {
      const dispositions = $("policy-dispositions").value.split(",").map((d) => d.trim()).filter(Boolean);
      await api("POST", "/api/v1/qa/sampling-policies", {
        name: $("policy-name").value.trim(), scorecard_id: $("policy-scorecard").value, calls_per_agent: Number.parseInt($("policy-count").value, 10),
        period: $("policy-period").value, min_duration_s: Number.parseInt($("policy-min-duration").value || "0", 10),
        queue_ids: checked($("policy-queues")), disposition_codes: dispositions, reviewer_ids: checked($("policy-reviewers")),
      });
      await loadPolicies(names);
    } catch (error) { showError(error.message); }
  });
  await loadPolicies(names);
}

async function loadPolicies(names) {
  const policies = await api("GET", "/api/v1/qa/sampling-policies");
  $("policies-table").querySelector("tbody").replaceChildren(...policies.map((p) => {
    const actions = el("span", { className: "actions" },
      act("run-policy-button", t("run_now"), async () => {
        const run = await api("POST", `/api/v1/qa/sampling-policies/${p.id}/run`, {});
        $("policy-run-result").textContent = t("policy_added").replace("{count}", String(run.added));
        $("policy-run-result").hidden = false;
      }));
    if (p.active) actions.append(act("deactivate-policy-button", t("deactivate_policy"), async () => {
      await api("PATCH", `/api/v1/qa/sampling-policies/${p.id}`, { active: false });
      await loadPolicies(names);
    }));
    const tr = el("tr", { className: p.active ? "" : "inactive" }, el("td", { textContent: p.name }), el("td", { textContent: names.scorecards[p.scorecard_id] || "" }),
      el("td", { textContent: `${p.calls_per_agent} / ${t(`bucket_${p.period}`)}` }), el("td", { textContent: String(p.min_duration_s) }),
      el("td", { textContent: p.reviewer_ids.map((id) => names.users[id] || id).join(", ") }), el("td", {}, actions));
    tr.dataset.policyId = p.id;
    return tr;
  }));
}
