// The agent's quality-assurance page (docs/qa.md): its scored evaluations, each with the
// call's recording, the answers and the reviewer's comments; acknowledge, or dispute with
// a reason (a second reviewer then decides); and the exemplary-call library (典型案例)
// to browse and play.
// Markup: #my-evaluations-table tr[data-evaluation-id][data-status] .open-button;
// #my-evaluation[data-status] #acknowledge-button, #dispute-reason, #dispute-button;
// #library-table tr[data-library-item-id] .play-button (player in #library-player).
import { $, api, el, guarded, logOut, showError, signedInPage, t } from "./common.js";
import { CallPlayer, playCall } from "./player.js";

let current = null;
let player = null;

function button(className, label, onClick) {
  const b = el("button", { type: "button", className, textContent: label });
  b.addEventListener("click", guarded(onClick));
  return b;
}

function setPlayer(made) {
  if (player) player.stop();
  player = made;
}

async function loadEvaluations() {
  const page = await api("GET", "/api/v1/agent/qa/evaluations");
  const rows = page.items.map((e) => {
    const tr = el("tr", {}, el("td", {}, el("code", { textContent: e.start_serial })), el("td", { textContent: e.reviewer_name || "" }),
      el("td", { className: "score", textContent: e.total_score === null ? "—" : String(e.total_score) }), el("td", { className: "grade", textContent: e.grade || "" }),
      el("td", { className: "status", textContent: t(`qa_status_${e.status}`) }),
      el("td", {}, button("open-button", t("open_item"), async () => show(await api("GET", `/api/v1/agent/qa/evaluations/${e.id}`)))));
    tr.dataset.evaluationId = e.id;
    tr.dataset.status = e.status;
    return tr;
  });
  $("my-evaluations-table").querySelector("tbody").replaceChildren(...rows);
  $("no-evaluations").hidden = rows.length > 0;
}

function show(evaluation) {
  current = evaluation;
  const section = $("my-evaluation");
  section.hidden = false;
  section.dataset.evaluationId = evaluation.id;
  section.dataset.status = evaluation.status;
  $("my-evaluation-serial").textContent = evaluation.start_serial;
  $("my-evaluation-score").textContent = evaluation.total_score === null ? "" : String(evaluation.total_score);
  $("my-evaluation-grade").textContent = evaluation.grade || "";
  const questions = {};
  for (const s of (evaluation.scorecard.sections || [])) for (const q of s.questions) questions[q.id] = q;
  $("my-answers-table").querySelector("tbody").replaceChildren(...evaluation.answers.map((a) => {
    const q = questions[a.question_id] || { text: a.question_id };
    const value = a.value === "yes" ? t("answer_yes") : a.value === "no" ? t("answer_no") : a.value === "na" ? t("answer_na") : String(a.value);
    const tr = el("tr", {}, el("td", { textContent: q.text }), el("td", { textContent: value }), el("td", { textContent: a.score === null ? "—" : String(a.score) }));
    tr.dataset.questionId = a.question_id;
    return tr;
  }));
  $("my-evaluation-comments").textContent = evaluation.comments || "";
  $("my-evaluation-comments").hidden = !evaluation.comments;
  $("respond-form").hidden = evaluation.status !== "submitted";
  const [call] = evaluation.calls || [];
  if (call && call.recordings.length) {
    playCall($("my-evaluation-player"), call.call_id, { onError: (error) => showError(error.message) }).then(setPlayer).catch((error) => showError(error.message));
  }
}

$("acknowledge-button").addEventListener("click", guarded(async () => {
  show(await api("POST", `/api/v1/agent/qa/evaluations/${current.id}/acknowledge`));
  await loadEvaluations();
}));

$("respond-form").addEventListener("submit", guarded(async () => {
  show(await api("POST", `/api/v1/agent/qa/evaluations/${current.id}/dispute`, { reason: $("dispute-reason").value.trim() }));
  $("dispute-reason").value = "";
  await loadEvaluations();
}));

async function loadLibrary() {
  const params = new URLSearchParams();
  if ($("library-q").value.trim()) params.set("q", $("library-q").value.trim());
  if ($("library-kind-filter").value) params.set("kind", $("library-kind-filter").value);
  if ($("library-tag").value.trim()) params.set("tag", $("library-tag").value.trim());
  const page = await api("GET", `/api/v1/qa/library?${params}`);
  $("library-table").querySelector("tbody").replaceChildren(...page.items.map((item) => {
    const tr = el("tr", {}, el("td", { textContent: item.title }), el("td", { textContent: t(`kind_${item.kind}`) }),
      el("td", { textContent: item.tags.join(", ") }), el("td", { textContent: item.notes || "" }),
      el("td", {}, button("play-button", t("play"), async () => {
        const renew = () => api("POST", `/api/v1/qa/library/${item.id}/playback`);
        setPlayer(new CallPlayer($("library-player"), await renew(), { onError: (error) => showError(error.message), renew }));
        await player.play();
      })));
    tr.dataset.libraryItemId = item.id;
    return tr;
  }));
}

$("library-filter").addEventListener("submit", guarded(() => loadLibrary()));

async function start() {
  $("login-form").hidden = true;
  $("my-qa").hidden = false;
  await Promise.all([loadEvaluations(), loadLibrary()]);
}

$("logout-button").addEventListener("click", () => logOut());

signedInPage(start);
