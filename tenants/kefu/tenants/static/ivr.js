// The IVR editor (docs/ivr.md): the tenant's flows, and one flow's draft as a tree of
// node forms.  The tree follows the exits from the start node (a node reached again is
// a link, not a copy); nodes nothing leads to are listed after it.  Saving and
// publishing show the server's errors at their node (.node-errors) and exit
// (.exit-error); errors without a node go to #flow-errors.  The simulator and the
// per-node statistics of the last 24 hours are below the tree.
import { $, api, el, logOut, playAudio, session, showError, signedInPage, t } from "./common.js";

const DIGITS = "0123456789*#";
const CALLER_ACTIONS = ["queue", "voicemail", "callback", "transfer", "hangup"];
const WITH_PROMPT = ["play", "menu", "collect", "voicemail", "callback", "hangup"];
const BRANCH_OPS = ["equals", "not_equals", "starts_with", "contains", "matches", "less_than", "greater_than", "is_set"];

const state = { flows: [], queues: [], schedules: [], agents: [], skills: [], audio: [], tenantLocale: "en", flow: null, doc: null, errors: [] };

function select(items, value, blank) {
  const s = el("select");
  if (blank !== undefined) s.append(new Option(blank, ""));
  for (const [v, text] of items) s.append(new Option(text, v));
  s.value = value ?? "";
  return s;
}

function locales() {
  return [...new Set([state.tenantLocale, ...(state.doc.locales || [])])];
}

/** The exits a node of its type has (as kefu.tenants.ivr.flow.exits_of), in display order. */
function exitNames(node) {
  switch (node.type) {
    case "play": case "set": return ["next"];
    case "menu": return [...DIGITS].filter((d) => node.exits && d in node.exits).concat(["invalid", "no_input"]);
    case "collect": return ["done", "invalid", "no_input"];
    case "hours": return ["open", "closed", "holiday"];
    case "branch": return [...new Set((node.cases || []).map((c) => c.exit)), "else"];
    case "http": return ["ok", "fallback"];
    default: return [];
  }
}

// --- fields --------------------------------------------------------------------------

function field(label, input) {
  return el("label", {}, el("span", { textContent: label }), " ", input);
}

function bind(input, node, name, kind = "text") {
  input.dataset.field = name;
  input.addEventListener("input", () => {
    const raw = input.type === "checkbox" ? input.checked : input.value;
    if (kind === "int") {
      if (raw === "") delete node[name]; else node[name] = Number.parseInt(raw, 10);
    } else if (kind === "optional") {
      if (raw === "") delete node[name]; else node[name] = raw;
    } else {
      node[name] = raw;
    }
  });
  return input;
}

function textInput(node, name, kind = "text", props = {}) {
  const value = node[name];
  return bind(el("input", { value: value === undefined || value === null ? "" : String(value), ...props }), node, name, kind);
}

function idSelect(node, name, items, blank) {
  const s = select(items, node[name], blank);
  return bind(s, node, name, "optional");
}

/** Per locale: text to speech (the textarea) or one of the tenant's uploaded prompts. */
function promptFields(node) {
  return locales().map((locale) => {
    const part = (node.prompt && node.prompt[locale]) || {};
    const area = el("textarea", { rows: 2, cols: 50, className: "prompt-text", value: part.text || "", hidden: Boolean(part.audio) });
    area.dataset.locale = locale;
    const source = select(state.audio.map((a) => [a.id, `♪ ${a.name}`]), part.audio || "", t("spoken_text"));
    source.className = "prompt-source";
    source.dataset.locale = locale;
    const update = () => {
      node.prompt = node.prompt || {};
      if (source.value) node.prompt[locale] = { audio: source.value };
      else if (area.value.trim()) node.prompt[locale] = { text: area.value };
      else delete node.prompt[locale];
      if (!Object.keys(node.prompt).length) delete node.prompt;
      area.hidden = Boolean(source.value);
    };
    area.addEventListener("input", update);
    source.addEventListener("change", update);
    return field(`${t("prompt")} (${locale})`, el("span", {}, source, " ", area));
  });
}

function casesField(node) {
  const area = el("textarea", { rows: 3, cols: 50, className: "branch-cases",
    value: (node.cases || []).map((c) => `${c.exit}: ${c.op}${c.value != null ? " " + c.value : ""}`).join("\n") });
  area.addEventListener("change", () => {
    node.cases = area.value.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
      const at = line.indexOf(":");
      const exit = line.slice(0, at).trim();
      const rest = line.slice(at + 1).trim();
      const [op, ...value] = rest.split(/\s+/);
      return op === "is_set" ? { exit, op, value: null } : { exit, op, value: value.join(" ") };
    });
    renderTree();
  });
  return [field(t("cases_hint"), area)];
}

function assignField(node) {
  const area = el("textarea", { rows: 2, cols: 40, className: "http-assign",
    value: Object.entries(node.assign || {}).map(([k, v]) => `${k}=${v}`).join("\n") });
  area.addEventListener("input", () => {
    node.assign = Object.fromEntries(area.value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => l.split("=").map((x) => x.trim())));
  });
  return field(t("assign_hint"), area);
}

function skillsField(node) {
  const s = el("select", { multiple: true, className: "queue-skills" });
  const chosen = new Set((node.skills || []).map((k) => k.skill_id));
  for (const skill of state.skills) s.append(Object.assign(new Option(skill.name, skill.id), { selected: chosen.has(skill.id) }));
  s.addEventListener("change", () => {
    const old = Object.fromEntries((node.skills || []).map((k) => [k.skill_id, k]));
    node.skills = [...s.selectedOptions].map((o) => old[o.value] || { skill_id: o.value, min_proficiency: 1, required: true });
  });
  return field("skills", s);
}

function typeFields(node) {
  const queues = state.queues.map((q) => [q.id, q.name]);
  const parts = WITH_PROMPT.includes(node.type) ? promptFields(node) : [];
  switch (node.type) {
    case "menu":
      parts.push(field("timeout_s", textInput(node, "timeout_s", "int", { type: "number", min: 1, max: 60 })),
        field("retries", textInput(node, "retries", "int", { type: "number", min: 0, max: 10 })));
      break;
    case "collect": {
      const terminator = select([["#", "#"], ["*", "*"], ["none", t("none")]], node.terminator === null ? "none" : node.terminator ?? "#");
      terminator.addEventListener("change", () => { node.terminator = terminator.value === "none" ? null : terminator.value; });
      parts.push(field("variable", textInput(node, "variable")),
        field("min_length", textInput(node, "min_length", "int", { type: "number", min: 1, max: 32 })),
        field("max_length", textInput(node, "max_length", "int", { type: "number", min: 1, max: 32 })),
        field("terminator", terminator),
        field("timeout_s", textInput(node, "timeout_s", "int", { type: "number", min: 1, max: 60 })),
        field("retries", textInput(node, "retries", "int", { type: "number", min: 0, max: 10 })));
      break;
    }
    case "hours":
      parts.push(field("schedule", idSelect(node, "schedule_id", state.schedules.map((s) => [s.id, s.name]), t("none"))));
      break;
    case "branch":
      parts.push(field("on", textInput(node, "on", "text", { placeholder: "caller_number | var:name" })), ...casesField(node));
      break;
    case "http": {
      const method = idSelect(node, "method", [["GET", "GET"], ["POST", "POST"]]);
      parts.push(field("url", textInput(node, "url", "text", { size: 50 })), field("method", method),
        field("timeout_s", textInput(node, "timeout_s", "int", { type: "number", min: 1, max: 10 })),
        field("retries", textInput(node, "retries", "int", { type: "number", min: 0, max: 3 })), assignField(node));
      break;
    }
    case "set":
      parts.push(field("variable", textInput(node, "variable")), field("value", textInput(node, "value")));
      break;
    case "queue":
      parts.push(field("queue", idSelect(node, "queue_id", queues, t("none"))),
        field("priority", textInput(node, "priority", "int", { type: "number", min: -100, max: 100 })), skillsField(node));
      break;
    case "voicemail": case "callback":
      parts.push(field("queue", idSelect(node, "queue_id", queues, t("entry_points_queue"))));
      break;
    case "transfer":
      parts.push(field("agent", idSelect(node, "agent_id", state.agents.map((a) => [a.id, a.display_name]), t("none"))),
        field("flow", idSelect(node, "flow_id", state.flows.filter((f) => f.id !== state.flow.id).map((f) => [f.id, f.name]), t("none"))));
      break;
    default:
  }
  return parts;
}

// --- the tree ----------------------------------------------------------------------------

function exitRow(id, node, name) {
  const ids = Object.keys(state.doc.nodes).filter((other) => other !== id || node.type === "menu" || node.type === "collect");
  const target = select(ids.map((other) => [other, other]), node.exits && node.exits[name], t("none"));
  target.className = "exit-target";
  target.addEventListener("change", () => {
    node.exits = node.exits || {};
    if (target.value) node.exits[name] = target.value; else delete node.exits[name];
    renderTree();
  });
  const row = el("div", { className: "ivr-exit" }, el("span", { textContent: `${name} →` }), target, el("span", { className: "exit-error" }));
  row.dataset.exit = name;
  return row;
}

function nodeCard(id, depth, unreachable) {
  const node = state.doc.nodes[id];
  const remove = el("button", { type: "button", className: "delete-node", textContent: t("delete") });
  remove.addEventListener("click", () => {
    delete state.doc.nodes[id];
    for (const other of Object.values(state.doc.nodes)) {
      for (const [exit, target] of Object.entries(other.exits || {})) if (target === id) delete other.exits[exit];
    }
    renderTree();
  });
  const card = el("div", { className: "ivr-node" },
    el("header", {}, el("strong", { textContent: id }), el("em", { textContent: node.type }),
      unreachable ? el("span", { className: "ivr-link", textContent: t("unreachable") }) : null, remove),
    el("div", { className: "ivr-fields" }, ...typeFields(node)));
  card.dataset.node = id;
  card.style.setProperty("--depth", `${Math.min(depth, 12) * 1.5}rem`);
  if (!CALLER_ACTIONS.includes(node.type)) {
    const exits = el("div", { className: "ivr-exits" }, ...exitNames(node).map((name) => exitRow(id, node, name)));
    if (node.type === "menu") {
      const free = [...DIGITS].filter((d) => !(node.exits && d in node.exits));
      const key = select(free.map((d) => [d, d]));
      key.className = "new-key";
      const add = el("button", { type: "button", className: "add-key", textContent: t("add_key") });
      add.addEventListener("click", () => {
        node.exits = node.exits || {};
        node.exits[key.value] = "";
        renderTree();
      });
      if (free.length) exits.append(el("div", { className: "ivr-exit" }, key, add));
    }
    card.append(exits);
  }
  card.append(el("ul", { className: "node-errors" }));
  return card;
}

function renderTree() {
  const doc = state.doc;
  const tree = $("flow-tree");
  const ids = Object.keys(doc.nodes);
  const start = $("flow-start");
  start.replaceChildren(...ids.map((id) => new Option(id, id)));
  start.value = doc.start;
  $("flow-locales").value = (doc.locales || []).join(", ");
  const cards = [];
  const seen = new Set();
  // Depth-first along the exits, without recursion (menus nest to any depth).
  const stack = doc.nodes[doc.start] ? [[doc.start, 0]] : [];
  while (stack.length) {
    const [id, depth] = stack.pop();
    if (seen.has(id)) continue;
    seen.add(id);
    cards.push(nodeCard(id, depth, false));
    const node = doc.nodes[id];
    const targets = exitNames(node).map((name) => node.exits && node.exits[name]).filter((target) => target && doc.nodes[target]);
    for (const target of targets.reverse()) {
      if (seen.has(target)) continue;
      stack.push([target, depth + 1]);
    }
  }
  for (const id of ids) if (!seen.has(id)) cards.push(nodeCard(id, 0, true));
  tree.replaceChildren(...cards);
  showErrors();
}

function showErrors() {
  const global = [];
  for (const card of document.querySelectorAll(".ivr-node")) {
    card.classList.remove("has-errors");
    card.querySelector(".node-errors").replaceChildren();
  }
  for (const span of document.querySelectorAll(".exit-error")) span.textContent = "";
  for (const error of state.errors) {
    const card = error.node ? document.querySelector(`.ivr-node[data-node="${CSS.escape(error.node)}"]`) : null;
    if (!card) { global.push(error); continue; }
    card.classList.add("has-errors");
    const exit = error.exit ? card.querySelector(`.ivr-exit[data-exit="${CSS.escape(error.exit)}"] .exit-error`) : null;
    if (exit) exit.textContent = error.message;
    else card.querySelector(".node-errors").append(el("li", { textContent: `${error.message} (${error.code})`, className: `error-${error.code}` }));
  }
  $("flow-errors").replaceChildren(...global.map((e) => el("li", { textContent: `${e.node ? e.node + ": " : ""}${e.message} (${e.code})` })));
}

// --- flows ---------------------------------------------------------------------------------

async function openFlow(flowId) {
  const flow = await api("GET", `/api/v1/ivr/flows/${flowId}`);
  state.flow = flow;
  state.doc = JSON.parse(JSON.stringify(flow.draft));
  state.doc.nodes = state.doc.nodes || {};
  state.errors = (await api("POST", `/api/v1/ivr/flows/${flowId}/validate`)).errors || [];
  $("editor").hidden = false;
  $("editor-title").textContent = flow.name;
  $("editor").dataset.flowId = flow.id;
  $("editor-status").textContent = "";
  $("simulate-result").textContent = "";
  renderTree();
  await showStatistics();
}

async function showStatistics() {
  const report = await api("GET", `/api/v1/ivr/flows/${state.flow.id}/statistics`);
  const flow = report.flows[0];
  $("node-stats-table").querySelector("tbody").replaceChildren(...(flow ? flow.nodes : []).map((n) => {
    const r = el("tr", {}, el("td", { textContent: n.node }), el("td", { textContent: String(n.entries) }),
      el("td", { textContent: Object.entries(n.exits).map(([k, v]) => `${k}: ${v}`).join(", ") }));
    r.dataset.node = n.node;
    return r;
  }));
}

async function refresh() {
  const [flows, queues, schedules, agents, skills, me, report, audio] = await Promise.all([
    api("GET", "/api/v1/ivr/flows"),
    api("GET", "/api/v1/queues"),
    api("GET", "/api/v1/schedules"),
    api("GET", "/api/v1/agents"),
    api("GET", "/api/v1/skills"),
    api("GET", "/api/v1/me"),
    api("GET", "/api/v1/ivr/statistics"),
    api("GET", "/api/v1/ivr/audio"),
  ]);
  Object.assign(state, { flows, queues, schedules, agents, skills, audio, tenantLocale: me.tenant.locale || "en" });
  $("audio-table").querySelector("tbody").replaceChildren(...audio.map((a) => {
    const play = el("button", { type: "button", className: "play-audio", textContent: "▶" });
    play.addEventListener("click", guarded(() => playAudio($("audio-player"), a.media_url)));
    const remove = el("button", { type: "button", className: "delete-audio", textContent: t("delete") });
    remove.addEventListener("click", guarded(async () => { await api("DELETE", `/api/v1/ivr/audio/${a.id}`); await refresh(); }));
    const r = el("tr", {}, el("td", { textContent: a.name }), el("td", { textContent: (a.duration_ms / 1000).toFixed(1) }), el("td", {}, play), el("td", {}, remove));
    r.dataset.audioId = a.id;
    return r;
  }));
  const counts = Object.fromEntries(report.flows.map((f) => [f.flow_id, f]));
  $("flows-table").querySelector("tbody").replaceChildren(...flows.map((f) => {
    const edit = el("button", { type: "button", className: "edit-flow", textContent: t("edit") });
    edit.addEventListener("click", () => openFlow(f.id).catch((error) => showError(error.message)));
    const c = counts[f.id];
    const rate = c && c.containment_rate !== null ? `${Math.round(c.containment_rate * 100)} %` : "";
    const r = el("tr", {}, el("td", { textContent: f.name }), el("td", { textContent: f.published_version ?? "" }),
      el("td", { textContent: c ? String(c.calls) : "0" }), el("td", { textContent: rate }), el("td", {}, edit));
    r.dataset.flowId = f.id;
    return r;
  }));
}

/** The draft as the server takes it: a key added without a target yet is left out. */
function documentToSave() {
  const copy = JSON.parse(JSON.stringify(state.doc));
  for (const node of Object.values(copy.nodes)) {
    for (const [exit, target] of Object.entries(node.exits || {})) if (!target) delete node.exits[exit];
  }
  return copy;
}

async function saveDraft() {
  const saved = await api("PUT", `/api/v1/ivr/flows/${state.flow.id}/draft`, { document: documentToSave() });
  state.errors = saved.errors || [];
  showErrors();
  $("editor-status").textContent = state.errors.length ? t("draft_has_errors") : t("draft_saved");
}

function guarded(handler) {
  return async (event) => {
    if (event) event.preventDefault();
    showError("");
    try { await handler(); } catch (error) {
      if (error.body && Array.isArray(error.body.errors)) { state.errors = error.body.errors; showErrors(); }
      showError(error.message);
    }
  };
}

$("flow-form").addEventListener("submit", guarded(async () => {
  const created = await api("POST", "/api/v1/ivr/flows", { name: $("flow-name").value.trim() });
  $("flow-form").reset();
  await refresh();
  await openFlow(created.id);
}));

$("audio-form").addEventListener("submit", guarded(async () => {
  const file = $("audio-file").files[0];
  const current = session.load();
  const response = await fetch(`/api/v1/ivr/audio?name=${encodeURIComponent($("audio-name").value.trim())}`, {
    method: "POST", headers: { Authorization: `Bearer ${current.access_token}`, "Content-Type": file.type || "audio/wav" }, body: file,
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && (body.detail || body.code)) || `HTTP ${response.status}`);
  $("audio-form").reset();
  await refresh();
  if (state.doc) renderTree();
}));

$("node-form").addEventListener("submit", guarded(async () => {
  const id = $("node-id").value.trim();
  if (state.doc.nodes[id]) throw new Error(`${id}: ${t("node_id")} ✕`);
  const type = $("node-type").value;
  const node = { type };
  if (!CALLER_ACTIONS.includes(type)) node.exits = {};
  if (["play", "menu", "collect"].includes(type)) node.prompt = {};
  state.doc.nodes[id] = node;
  if (!state.doc.nodes[state.doc.start]) state.doc.start = id;
  $("node-form").reset();
  renderTree();
}));

$("flow-start").addEventListener("change", () => { state.doc.start = $("flow-start").value; renderTree(); });
$("flow-locales").addEventListener("change", () => {
  const list = $("flow-locales").value.split(",").map((x) => x.trim()).filter(Boolean);
  if (list.length) state.doc.locales = list; else delete state.doc.locales;
  renderTree();
});

$("save-draft-button").addEventListener("click", guarded(saveDraft));

$("publish-button").addEventListener("click", guarded(async () => {
  await saveDraft();
  const version = await api("POST", `/api/v1/ivr/flows/${state.flow.id}/publish`);
  state.errors = [];
  showErrors();
  $("editor-status").textContent = `${t("published_version")} ${version.number}`;
  await refresh();
}));

$("simulate-form").addEventListener("submit", guarded(async () => {
  await saveDraft();
  const inputs = $("simulate-inputs").value.split(",").map((x) => x.trim()).filter(Boolean);
  const walk = await api("POST", `/api/v1/ivr/flows/${state.flow.id}/simulate`, { inputs, locale: state.tenantLocale });
  const said = walk.steps.flatMap((s) => s.said || []);
  $("simulate-result").textContent = [`path: ${walk.path.join(" → ")}`, ...said.map((s) => `“${s}”`), `outcome: ${JSON.stringify(walk.outcome)}`].join("\n");
}));

$("logout-button").addEventListener("click", logOut);

async function start() {
  $("login-form").hidden = true;
  $("ivr").hidden = false;
  await refresh();
}

signedInPage(start);
