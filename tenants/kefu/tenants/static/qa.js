// The QA reviewer's page (docs/qa.md): the work list the sampling policies filled,
// listening to a call and scoring it on one page (the two-channel player of ./player.js
// beside the scorecard version's questions), drafts, submitting (the server scores),
// second reviews of disputed evaluations, filing a call in the exemplary-call library,
// and searching evaluations.  /qa/?call=<id> starts an evaluation of that call;
// /qa/?evaluation=<id> opens one.  Calibrations, reports and sampling policies: ./qa_manage.js;
// the scorecard builder: ./scorecards.js.
// Markup: #work-list-table tr[data-work-item-id] .evaluate-button; #evaluation[data-evaluation-id]
// [data-status]; #questions .question[data-question-id][data-type] with radio inputs
// .answer (value yes | no | na | an integer); #evaluations-filter (fields named as the search's
// query parameters); #evaluations-table tr[data-evaluation-id] .open-button.
import { $, api, el, guarded, logOut, showError, signedInPage, t } from "./common.js";
import { playCall } from "./player.js";
import { installPolicies, installReports, loadCalibrations, offerCalibration } from "./qa_manage.js";
import { installScorecardEditor, loadScorecards } from "./scorecards.js";

const QA_TYPES = ["random", "targeted", "complaint", "new_hire"];
const STATUSES = ["draft", "submitted", "acknowledged", "disputed", "final"];
let me = null;
let current = null;   // the evaluation shown
let player = null;
let agentNames = {};

function can(permission) {
  return me.permissions.includes(permission);
}

function minutes(seconds) {
  return `${Math.floor((seconds || 0) / 60)}:${String((seconds || 0) % 60).padStart(2, "0")}`;
}

function button(className, label, onClick) {
  const b = el("button", { type: "button", className, textContent: label });
  b.addEventListener("click", guarded(onClick));
  return b;
}

// --- the work list ----------------------------------------------------------------------------

async function loadWorkList() {
  if (!can("qa.evaluate")) { $("work-list").hidden = true; return; }
  const page = await api("GET", "/api/v1/qa/work-list?status=open");
  const rows = page.items.map((item) => {
    const tr = el("tr", {}, el("td", {}, el("code", { textContent: item.call_serial })), el("td", { textContent: item.agent_name || "" }),
      el("td", { textContent: item.queue_name || "" }), el("td", { textContent: minutes(item.call_duration_s) }), el("td", { textContent: item.policy_name }),
      el("td", {}, button("evaluate-button", t("evaluate"), async () => {
        showEvaluation(await api("POST", `/api/v1/qa/work-items/${item.id}/evaluation`));
      })));
    tr.dataset.workItemId = item.id;
    return tr;
  });
  $("work-list-table").querySelector("tbody").replaceChildren(...rows);
  $("no-work").hidden = rows.length > 0;
}

// --- starting an evaluation of a call -------------------------------------------------------------

async function offerStart(callId) {
  const scorecards = (await api("GET", "/api/v1/qa/scorecards")).filter((s) => s.status === "active" && s.published_version !== null);
  $("start-scorecard").replaceChildren(...scorecards.map((s) => new Option(s.name, s.id)));
  $("start-qa-type").replaceChildren(...QA_TYPES.map((type) => new Option(t(`qa_type_${type}`), type)));
  $("start-evaluation").hidden = false;
  $("start-evaluation").dataset.callId = callId;
  $("start-call-serial").textContent = callId;
}

$("start-form").addEventListener("submit", guarded(async () => {
  const evaluation = await api("POST", "/api/v1/qa/evaluations", {
    scorecard_id: $("start-scorecard").value, call_ids: [$("start-evaluation").dataset.callId], qa_type: $("start-qa-type").value,
  });
  $("start-evaluation").hidden = true;
  showEvaluation(evaluation);
  await Promise.all([loadWorkList(), search()]);
}));

// --- one evaluation -------------------------------------------------------------------------------

function answerChoices(question) {
  if (question.type === "yes_no") return [["yes", t("answer_yes")], ["no", t("answer_no")]];
  const values = [];
  for (let v = question.min; v <= question.max; v += 1) values.push([String(v), String(v)]);
  return values;
}

function questionBlock(question, answer, editable) {
  const block = el("fieldset", { className: "question" });
  block.dataset.questionId = question.id;
  block.dataset.type = question.type;
  const marks = [question.auto_fail ? ` · ${t("auto_fail")}` : "", ` · ${t("weight")} ${question.weight}`].join("");
  block.append(el("legend", { textContent: `${question.text}${marks}` }));
  if (question.guidance) block.append(el("p", { className: "guidance", textContent: question.guidance }));
  const choices = answerChoices(question);
  if (question.na_allowed) choices.push(["na", t("answer_na")]);
  const given = answer ? String(answer.value) : null;
  for (const [value, label] of choices) {
    const input = el("input", { type: "radio", name: `q-${question.id}`, value, className: "answer", checked: given === value, disabled: !editable });
    block.append(el("label", { className: "choice" }, input, ` ${label}`));
  }
  if (answer && answer.score !== null && answer.score !== undefined) block.append(el("span", { className: "answer-score", textContent: ` → ${answer.score}` }));
  return block;
}

function collectAnswers() {
  const answers = [];
  for (const block of $("questions").querySelectorAll(".question")) {
    const chosen = block.querySelector(".answer:checked");
    if (!chosen) continue;
    const value = block.dataset.type === "scale" && chosen.value !== "na" ? Number.parseInt(chosen.value, 10) : chosen.value;
    answers.push({ question_id: block.dataset.questionId, value });
  }
  return answers;
}

function showEvaluation(evaluation) {
  current = evaluation;
  const mine = evaluation.reviewer_id === me.user.id;
  const drafting = evaluation.status === "draft" && mine;
  const reviewing = evaluation.status === "disputed" && !mine && can("qa.evaluate");
  const section = $("evaluation");
  section.hidden = false;
  section.dataset.evaluationId = evaluation.id;
  section.dataset.status = evaluation.status;
  $("evaluation-serial").textContent = evaluation.start_serial === evaluation.end_serial ? evaluation.start_serial : `${evaluation.start_serial} – ${evaluation.end_serial}`;
  $("evaluation-agent").textContent = evaluation.agent_name || "";
  $("evaluation-reviewer").textContent = evaluation.reviewer_name || "";
  $("evaluation-scorecard").textContent = `${evaluation.scorecard_name || ""} v${evaluation.scorecard_version ?? ""}`;
  $("evaluation-duration").textContent = minutes(evaluation.call_duration_s);
  $("evaluation-status").textContent = t(`qa_status_${evaluation.status}`);
  $("evaluation-score").textContent = evaluation.total_score === null ? "—" : String(evaluation.total_score);
  $("evaluation-grade").textContent = evaluation.grade ? `${evaluation.grade}${evaluation.auto_failed ? ` (${t("auto_failed")})` : ""}` : "—";
  $("dispute-note").hidden = !evaluation.dispute_reason;
  $("dispute-note").textContent = evaluation.dispute_reason ? t("disputed_because").replace("{reason}", evaluation.dispute_reason) : "";
  const answers = Object.fromEntries((evaluation.answers || []).map((a) => [a.question_id, a]));
  const document_ = evaluation.scorecard || { sections: [] };
  $("questions").replaceChildren(...(document_.sections || []).map((s) => {
    const part = el("section", { className: "scorecard-section" }, el("h3", { textContent: `${s.title} · ${t("weight")} ${s.weight}` }));
    part.append(...s.questions.map((q) => questionBlock(q, answers[q.id], drafting || reviewing)));
    return part;
  }));
  $("business-type").value = evaluation.business_type || "";
  $("business-type").disabled = !drafting;
  $("evaluation-comments").value = evaluation.comments || "";
  $("evaluation-comments").disabled = !(drafting || reviewing);
  $("draft-actions").hidden = !drafting;
  $("second-review-actions").hidden = !reviewing;
  $("library-form").hidden = !(can("qa.evaluate") && evaluation.status !== "draft");
  $("library-filed").hidden = true;
  $("calibration-form").hidden = true;
  if (can("qa.evaluate") && evaluation.status !== "draft" && !evaluation.calibration_id) {
    offerCalibration(evaluation, refreshCalibrations).catch((error) => showError(error.message));
  }
  if (player) player.stop();
  player = null;
  const [call] = evaluation.calls || [];
  if (call && call.recordings.length) {
    playCall($("evaluation-player"), call.call_id, { onError: (error) => showError(error.message) })
      .then((made) => { player = made; })
      .catch((error) => showError(error.message));
  } else {
    $("evaluation-player").replaceChildren();
  }
  section.scrollIntoView({ block: "start" });
}

async function refreshCalibrations() {
  if (can("qa.read") || can("qa.evaluate")) await loadCalibrations({ onScore: showEvaluation });
}

$("save-draft-button").addEventListener("click", guarded(async () => {
  showEvaluation(await api("PATCH", `/api/v1/qa/evaluations/${current.id}`, {
    answers: collectAnswers(), comments: $("evaluation-comments").value, business_type: $("business-type").value.trim() || null,
  }));
}));

$("answers-form").addEventListener("submit", guarded(async () => {
  await api("PATCH", `/api/v1/qa/evaluations/${current.id}`, { business_type: $("business-type").value.trim() || null });
  showEvaluation(await api("POST", `/api/v1/qa/evaluations/${current.id}/submit`, { answers: collectAnswers(), comments: $("evaluation-comments").value }));
  await Promise.all([loadWorkList(), search(), refreshCalibrations()]);
}));

$("uphold-button").addEventListener("click", guarded(async () => {
  showEvaluation(await api("POST", `/api/v1/qa/evaluations/${current.id}/second-review`, { outcome: "upheld", comments: $("evaluation-comments").value }));
  await search();
}));

$("change-button").addEventListener("click", guarded(async () => {
  showEvaluation(await api("POST", `/api/v1/qa/evaluations/${current.id}/second-review`, {
    outcome: "changed", answers: collectAnswers(), comments: $("evaluation-comments").value,
  }));
  await search();
}));

$("library-form").addEventListener("submit", guarded(async () => {
  const [call] = current.calls;
  const tags = $("library-tags").value.split(",").map((tag) => tag.trim()).filter(Boolean);
  await api("POST", "/api/v1/qa/library", {
    call_id: call.call_id, kind: $("library-kind").value, title: $("library-title").value.trim(), notes: $("library-notes").value.trim() || null, tags,
  });
  $("library-filed").hidden = false;
}));

// --- evaluations search -----------------------------------------------------------------------------

// The filter form's fields are named as the search's query parameters; times are local.
const TIME_FILTERS = ["started_from", "started_to", "submitted_from", "submitted_to"];

async function search() {
  const params = new URLSearchParams({ limit: "50" });
  for (const [name, raw] of new FormData($("evaluations-filter"))) {
    const value = String(raw).trim();
    if (value) params.set(name, TIME_FILTERS.includes(name) ? new Date(value).toISOString() : value);
  }
  const page = await api("GET", `/api/v1/qa/evaluations?${params}`);
  const rows = page.items.map((e) => {
    const tr = el("tr", {}, el("td", {}, el("code", { textContent: e.start_serial })), el("td", { textContent: e.agent_name || "" }),
      el("td", { textContent: e.reviewer_name || "" }), el("td", { textContent: t(`qa_type_${e.qa_type}`) }),
      el("td", { className: "score", textContent: e.total_score === null ? "—" : String(e.total_score) }), el("td", { className: "grade", textContent: e.grade || "" }),
      el("td", { className: "status", textContent: t(`qa_status_${e.status}`) }),
      el("td", {}, button("open-button", t("open_item"), async () => showEvaluation(await api("GET", `/api/v1/qa/evaluations/${e.id}`)))));
    tr.dataset.evaluationId = e.id;
    tr.dataset.status = e.status;
    return tr;
  });
  $("evaluations-table").querySelector("tbody").replaceChildren(...rows);
}

$("evaluations-filter").addEventListener("submit", guarded(() => search()));

async function start() {
  me = await api("GET", "/api/v1/me");
  if (!["qa.read", "qa.evaluate"].some(can)) throw new Error(t("not_a_reviewer"));
  $("login-form").hidden = true;
  $("qa").hidden = false;
  $("qa-user").textContent = me.user.display_name;
  const agents = await api("GET", "/api/v1/agents").catch(() => []);
  agentNames = Object.fromEntries(agents.map((a) => [a.id, a.display_name]));
  $("filter-agent").replaceChildren($("filter-agent").options[0], ...Object.entries(agentNames).map(([id, name]) => new Option(name, id)));
  $("filter-status").replaceChildren($("filter-status").options[0], ...STATUSES.map((s) => new Option(t(`qa_status_${s}`), s)));
  $("filter-qa-type").replaceChildren($("filter-qa-type").options[0],
    ...[...QA_TYPES, "second_review", "calibration"].map((type) => new Option(t(`qa_type_${type}`), type)));
  // Reviewers from the user directory (admins and supervisors may read it); else only oneself.
  const reviewers = await api("GET", "/api/v1/users?limit=200")
    .then((page) => page.items.filter((u) => u.roles.some((role) => ["qa_reviewer", "supervisor", "tenant_admin"].includes(role))))
    .catch(() => [me.user]);
  $("filter-reviewer").replaceChildren($("filter-reviewer").options[0], ...reviewers.map((u) => new Option(u.display_name, u.id)));
  const [queues, scorecards] = await Promise.all([
    api("GET", "/api/v1/queues").catch(() => []), api("GET", "/api/v1/qa/scorecards?include_retired=true").catch(() => []),
  ]);
  $("filter-queue").replaceChildren($("filter-queue").options[0], ...queues.map((q) => new Option(q.name, q.id)));
  $("filter-scorecard").replaceChildren($("filter-scorecard").options[0], ...scorecards.map((s) => new Option(s.name, s.id)));
  await Promise.all([loadWorkList(), search()]);
  await refreshCalibrations();
  if (can("qa.read")) await installReports();
  if (can("qa.manage")) {
    installScorecardEditor();
    await Promise.all([loadScorecards(), installPolicies()]);
  }
  const params = new URLSearchParams(location.search);
  if (params.get("call") && can("qa.evaluate")) await offerStart(params.get("call"));
  if (params.get("evaluation")) showEvaluation(await api("GET", `/api/v1/qa/evaluations/${params.get("evaluation")}`));
}

$("logout-button").addEventListener("click", () => logOut());

signedInPage(start);
