// The scorecard editor of the QA page (qa.manage; docs/qa.md): sections with weights,
// questions (yes/no or a scale, weight, N/A allowed, auto-fail), grade bands; save the
// draft, publish it as the next version, retire a scorecard.  The server checks the
// document (weights adding up to 100, bands covering 0..100) and answers the offending
// ``path``; the editor shows the message.
// Markup: #scorecards-table tr[data-scorecard-id] (.edit-scorecard-button, .publish-button,
// .retire-button); #scorecard-editor .sc-section (.sc-section-title, .sc-section-weight,
// .sc-question: .sc-text, .sc-type, .sc-weight, .sc-min, .sc-max, .sc-na, .sc-auto-fail);
// .sc-grade (.sc-grade-name, .sc-grade-min, .sc-grade-max).
import { $, api, el, showError, t } from "./common.js";

const DEFAULT_GRADES = [["A", 90, 100], ["B", 75, 90], ["C", 60, 75], ["D", 0, 60]];
let editing = null;  // the scorecard id being edited (null: a new one)

function field(className, props = {}) {
  return el("input", { className, ...props });
}

function labelled(text, input) {
  return el("label", {}, `${text} `, input);
}

function remover(target) {
  const b = el("button", { type: "button", className: "sc-remove", textContent: "×" });
  b.addEventListener("click", () => target.remove());
  return b;
}

function questionRow(q = {}) {
  const type = el("select", { className: "sc-type" }, new Option(t("yes_no"), "yes_no"), new Option(t("scale"), "scale"));
  type.value = q.type || "yes_no";
  const row = el("div", { className: "sc-question actions" },
    field("sc-text", { required: true, maxLength: 500, placeholder: t("question"), value: q.text || "" }), type,
    labelled(t("weight"), field("sc-weight", { type: "number", min: 0, max: 100, step: 0.01, required: true, value: q.weight ?? "" })),
    labelled(t("scale_min"), field("sc-min", { type: "number", value: q.min ?? 1 })),
    labelled(t("scale_max"), field("sc-max", { type: "number", value: q.max ?? 5 })),
    labelled(t("answer_na"), field("sc-na", { type: "checkbox", checked: Boolean(q.na_allowed) })),
    labelled(t("auto_fail"), field("sc-auto-fail", { type: "checkbox", checked: Boolean(q.auto_fail) })));
  if (q.id) row.dataset.questionId = q.id;
  row.append(remover(row));
  return row;
}

function sectionBlock(s = {}) {
  const questions = el("div", { className: "sc-questions" }, ...(s.questions || [{}]).map(questionRow));
  const add = el("button", { type: "button", className: "sc-add-question", textContent: t("add_question") });
  add.addEventListener("click", () => questions.append(questionRow()));
  const block = el("fieldset", { className: "sc-section" },
    el("div", { className: "actions" }, field("sc-section-title", { required: true, maxLength: 200, placeholder: t("section"), value: s.title || "" }),
      labelled(t("weight"), field("sc-section-weight", { type: "number", min: 0, max: 100, step: 0.01, required: true, value: s.weight ?? "" }))),
    questions, add);
  if (s.id) block.dataset.sectionId = s.id;
  block.querySelector(".actions").append(remover(block));
  return block;
}

function gradeRow([grade, min, max]) {
  const row = el("div", { className: "sc-grade actions" }, field("sc-grade-name", { required: true, maxLength: 16, value: grade }),
    labelled(t("from"), field("sc-grade-min", { type: "number", min: 0, max: 100, step: 0.01, value: min })),
    labelled(t("below"), field("sc-grade-max", { type: "number", min: 0, max: 100, step: 0.01, value: max })));
  row.append(remover(row));
  return row;
}

function number(input) {
  return input.value === "" ? null : Number(input.value);
}

function readDocument() {
  const sections = [...$("sc-sections").querySelectorAll(".sc-section")].map((block) => ({
    ...(block.dataset.sectionId ? { id: block.dataset.sectionId } : {}),
    title: block.querySelector(".sc-section-title").value.trim(),
    weight: number(block.querySelector(".sc-section-weight")),
    questions: [...block.querySelectorAll(".sc-question")].map((row) => {
      const type = row.querySelector(".sc-type").value;
      return {
        ...(row.dataset.questionId ? { id: row.dataset.questionId } : {}),
        text: row.querySelector(".sc-text").value.trim(), type, weight: number(row.querySelector(".sc-weight")),
        ...(type === "scale" ? { min: number(row.querySelector(".sc-min")), max: number(row.querySelector(".sc-max")) } : {}),
        na_allowed: row.querySelector(".sc-na").checked, auto_fail: row.querySelector(".sc-auto-fail").checked,
      };
    }),
  }));
  const grades = [...$("sc-grades").querySelectorAll(".sc-grade")].map((row) => ({
    grade: row.querySelector(".sc-grade-name").value.trim(), min: number(row.querySelector(".sc-grade-min")), max: number(row.querySelector(".sc-grade-max")),
  }));
  return { sections, grades };
}

function openEditor(scorecard = null) {
  editing = scorecard ? scorecard.id : null;
  const doc = scorecard ? scorecard.draft : { sections: [{}] };
  $("scorecard-editor").hidden = false;
  $("sc-name").value = scorecard ? scorecard.name : "";
  $("sc-description").value = scorecard ? scorecard.description || "" : "";
  $("sc-sections").replaceChildren(...(doc.sections || []).map(sectionBlock));
  $("sc-grades").replaceChildren(...(doc.grades ? doc.grades.map((g) => [g.grade, g.min, g.max]) : DEFAULT_GRADES).map(gradeRow));
  $("sc-saved").hidden = true;
}

async function save() {
  const body = { name: $("sc-name").value.trim(), description: $("sc-description").value.trim() || null, document: readDocument() };
  const saved = editing ? await api("PATCH", `/api/v1/qa/scorecards/${editing}`, body) : await api("POST", "/api/v1/qa/scorecards", body);
  editing = saved.id;
  $("sc-saved").hidden = false;
  return saved;
}

export async function loadScorecards() {
  const list = await api("GET", "/api/v1/qa/scorecards?include_retired=true");
  $("scorecards-table").querySelector("tbody").replaceChildren(...list.map((s) => {
    const actions = el("span", { className: "actions" });
    const act = (className, label, handler) => {
      const b = el("button", { type: "button", className, textContent: label });
      b.addEventListener("click", async () => {
        showError("");
        try { await handler(); await loadScorecards(); } catch (error) { showError(error.message); }
      });
      actions.append(b);
    };
    if (s.status === "active") {
      act("edit-scorecard-button", t("edit"), async () => openEditor(await api("GET", `/api/v1/qa/scorecards/${s.id}`)));
      act("publish-button", t("publish"), () => api("POST", `/api/v1/qa/scorecards/${s.id}/publish`));
      act("retire-button", t("retire"), () => api("POST", `/api/v1/qa/scorecards/${s.id}/retire`));
    }
    const tr = el("tr", {}, el("td", { textContent: s.name }), el("td", { className: "version", textContent: s.published_version === null ? "—" : `v${s.published_version}` }),
      el("td", { textContent: t(`scorecard_${s.status}`) }), el("td", {}, actions));
    tr.dataset.scorecardId = s.id;
    return tr;
  }));
}

export function installScorecardEditor() {
  $("scorecards").hidden = false;
  $("new-scorecard-button").addEventListener("click", () => openEditor());
  $("sc-add-section").addEventListener("click", () => $("sc-sections").append(sectionBlock()));
  $("sc-add-grade").addEventListener("click", () => $("sc-grades").append(gradeRow(["", 0, 0])));
  $("scorecard-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    try { await save(); await loadScorecards(); } catch (error) { showError(error.message); }
  });
  $("sc-publish").addEventListener("click", async () => {
    showError("");
    try {
      const saved = await save();
      await api("POST", `/api/v1/qa/scorecards/${saved.id}/publish`);
      await loadScorecards();
    } catch (error) { showError(error.message); }
  });
}
