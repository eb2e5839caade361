// The tenant admin's portal: agents, queues and their routing rules, skills, reason and
// wrap-up codes, schedules, entry points and recent calls (docs/acd-configuration.md).
import { $, api, applyLanguage, logIn, logOut, playAudio, session, showError, t } from "./common.js";

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  return td;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows);
}

function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells.map((c) => (c instanceof Node ? (c.tagName === "TD" ? c : wrap(c)) : cell(c))));
  return tr;
}

function wrap(node) {
  const td = document.createElement("td");
  td.append(node);
  return td;
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", async () => {
    showError("");
    try { await onClick(); await refresh(); } catch (error) { showError(error.message); }
  });
  return b;
}

const QUEUE_RULES = {
  // rule -> [element id, kind]; kinds: text, int (empty: null), bool, id (empty: null)
  strategy: ["rules-strategy", "text"],
  ring_timeout_s: ["rules-ring-timeout", "int"],
  preferred_agent_timeout_s: ["rules-preferred-agent-timeout", "int"],
  service_level_s: ["rules-service-level", "int"],
  announce_interval_s: ["rules-announce-interval", "int"],
  relax_after_s: ["rules-relax-after", "int"],
  relax_any_after_s: ["rules-relax-any-after", "int"],
  max_wait_s: ["rules-max-wait", "int"],
  max_wait_action: ["rules-max-wait-action", "text"],
  max_wait_queue_id: ["rules-max-wait-queue", "id"],
  overflow_after_s: ["rules-overflow-after", "int"],
  overflow_ratio: ["rules-overflow-ratio", "float"],
  overflow_action: ["rules-overflow-action", "id"],
  overflow_queue_id: ["rules-overflow-queue", "id"],
  wrap_up_mode: ["rules-wrap-up-mode", "text"],
  wrap_up_s: ["rules-wrap-up", "int"],
  wrap_up_max_s: ["rules-wrap-up-max", "int"],
  disposition_required: ["rules-disposition-required", "bool"],
  schedule_id: ["rules-schedule", "id"],
  closed_action: ["rules-closed-action", "text"],
};

let portalState = { queues: [], skills: [] };

function options(select, items, blank) {
  const keep = select.value;
  select.replaceChildren(...(blank !== undefined ? [new Option(blank, "")] : []), ...items.map(([value, text]) => new Option(text, value)));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

/** Fill the rules form from the chosen queue (its rules and its skills). */
async function showQueueRules() {
  const queue = portalState.queues.find((q) => q.id === $("rules-queue").value);
  if (!queue) return;
  for (const [rule, [id, kind]] of Object.entries(QUEUE_RULES)) {
    const value = queue[rule];
    if (kind === "bool") $(id).checked = Boolean(value);
    else $(id).value = value === null || value === undefined ? "" : String(value);
  }
  const needed = Object.fromEntries((await api("GET", `/api/v1/queues/${queue.id}/skills`)).skills.map((s) => [s.skill_id, s]));
  $("rules-skills").replaceChildren($("rules-skills").firstElementChild, ...portalState.skills.map((skill) => {
    const need = needed[skill.id];
    const line = document.createElement("label");
    line.className = "rules-skill";
    line.dataset.skillId = skill.id;
    const use = Object.assign(document.createElement("input"), { type: "checkbox", className: "rules-skill-use", checked: Boolean(need) });
    const level = Object.assign(document.createElement("input"), { type: "number", min: 1, max: 10, className: "rules-skill-min", value: need ? need.min_proficiency : 1 });
    const required = Object.assign(document.createElement("input"), { type: "checkbox", className: "rules-skill-required", checked: need ? need.required : true });
    line.append(use, " ", skill.name, " · ", t("min_proficiency"), " ", level, " ", required, " ", t("required"));
    return line;
  }));
}

function readQueueRules() {
  const body = {};
  for (const [rule, [id, kind]] of Object.entries(QUEUE_RULES)) {
    const el = $(id);
    if (kind === "bool") body[rule] = el.checked;
    else if (kind === "int") body[rule] = el.value === "" ? null : Number.parseInt(el.value, 10);
    else if (kind === "float") body[rule] = el.value === "" ? null : Number.parseFloat(el.value);
    else if (kind === "id") body[rule] = el.value === "" ? null : el.value;
    else body[rule] = el.value;
  }
  for (const rule of ["max_wait_s", "preferred_agent_timeout_s", "service_level_s", "announce_interval_s", "wrap_up_s", "wrap_up_max_s"]) {
    if (body[rule] === null) body[rule] = rule === "max_wait_s" ? 600 : 0;
  }
  return body;
}

/** "09:00-12:00, 13:00-18:00" -> [["09:00","12:00"],["13:00","18:00"]] (the API checks the times). */
function parseHours(text) {
  return text.split(",").map((part) => part.trim()).filter(Boolean).map((part) => part.split("-").map((x) => x.trim()));
}

/** One holiday a line: "2026-12-24 09:00-12:00 Christmas Eve" or "2026-12-25 Christmas". */
function parseHolidays(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
    const [date, ...rest] = line.split(/\s+/);
    const hours = [];
    while (rest.length && /^\d{1,2}:\d{2}-\d{1,2}:\d{2},?$/.test(rest[0])) hours.push(...parseHours(rest.shift()));
    return { date, name: rest.join(" "), hours };
  });
}

async function refreshAcd(agents, queues) {
  const [skills, reasons, wrapUps, schedules] = await Promise.all([
    api("GET", "/api/v1/skills"),
    api("GET", "/api/v1/reason-codes"),
    api("GET", "/api/v1/wrap-up-codes"),
    api("GET", "/api/v1/schedules"),
  ]);
  portalState = { queues, skills };
  fill("skills-table", skills.map((s) => {
    const r = row(s.name, s.description || "", button(t("delete"), "delete-skill", () => api("DELETE", `/api/v1/skills/${s.id}`)));
    r.dataset.skillId = s.id;
    return r;
  }));
  options($("agent-skills-agent"), agents.map((a) => [a.id, a.display_name]));
  options($("agent-skills-skill"), skills.map((s) => [s.id, s.name]));
  await showAgentSkills();
  for (const [table, base, codes] of [["reason-codes-table", "/api/v1/reason-codes", reasons], ["wrap-up-codes-table", "/api/v1/wrap-up-codes", wrapUps]]) {
    fill(table, codes.map((c) => {
      const toggle = c.active
        ? button(t("deactivate"), "deactivate-code", () => api("DELETE", `${base}/${c.id}`))
        : button(t("activate"), "activate-code", () => api("PATCH", `${base}/${c.id}`, { active: true }));
      const r = row(c.code, c.label, c.active ? t("yes") : t("no"), toggle);
      r.dataset.code = c.code;
      return r;
    }));
  }
  const statuses = await Promise.all(schedules.map((s) => api("GET", `/api/v1/schedules/${s.id}/status`)));
  fill("schedules-table", schedules.map((s, i) => {
    const open = cell(statuses[i].open ? t("open") : t("closed"));
    open.className = "schedule-open";
    open.dataset.open = String(statuses[i].open);
    const next = statuses[i].next_change ? new Date(statuses[i].next_change).toLocaleString() : t("never");
    const r = row(s.name, s.time_zone, open, next, button(t("delete"), "delete-schedule", () => api("DELETE", `/api/v1/schedules/${s.id}`)));
    r.dataset.scheduleId = s.id;
    return r;
  }));
  const queueOptions = queues.map((q) => [q.id, q.name]);
  options($("rules-queue"), queueOptions);
  options($("rules-max-wait-queue"), queueOptions, "—");
  options($("rules-overflow-queue"), queueOptions, "—");
  options($("rules-schedule"), schedules.map((s) => [s.id, s.name]), t("no_schedule"));
  await showQueueRules();
}

function checkboxes(fieldsetId, items, checked = []) {
  const fieldset = $(fieldsetId);
  fieldset.replaceChildren(fieldset.firstElementChild, ...items.map(([value, text]) => {
    const label = document.createElement("label");
    const box = Object.assign(document.createElement("input"), { type: "checkbox", value, checked: checked.includes(value) });
    label.append(box, " ", text);
    return label;
  }));
}

function checked(fieldsetId) {
  return [...$(fieldsetId).querySelectorAll("input:checked")].map((box) => box.value);
}

/** Teams with their agents and supervisors; the supervisors of each queue (docs/supervision.md). */
async function refreshTeams(agents, queues) {
  const [teams, users] = await Promise.all([api("GET", "/api/v1/teams"), api("GET", "/api/v1/users?limit=200")]);
  const supervisors = users.items.filter((u) => u.roles.includes("supervisor") || u.roles.includes("tenant_admin"));
  const agentName = Object.fromEntries(agents.map((a) => [a.id, a.display_name]));
  const userName = Object.fromEntries(users.items.map((u) => [u.id, u.display_name]));
  fill("teams-table", teams.map((team) => {
    const r = row(team.name, team.agent_ids.map((id) => agentName[id]).join(", "), team.supervisor_ids.map((id) => userName[id] || id).join(", "),
      button(t("delete"), "delete-team", () => api("DELETE", `/api/v1/teams/${team.id}`)));
    r.dataset.teamId = team.id;
    return r;
  }));
  checkboxes("team-agents", agents.map((a) => [a.id, a.display_name]));
  const supervisorItems = supervisors.map((u) => [u.id, u.display_name]);
  checkboxes("team-supervisors", supervisorItems);
  portalState.supervisorItems = supervisorItems;
  options($("queue-supervisors-queue"), queues.map((q) => [q.id, q.name]));
  await showQueueSupervisors();
}

async function showQueueSupervisors() {
  const queueId = $("queue-supervisors-queue").value;
  const current = queueId ? (await api("GET", `/api/v1/queues/${queueId}/supervisors`)).user_ids : [];
  checkboxes("queue-supervisors", portalState.supervisorItems || [], current);
}

async function showAgentSkills() {
  const agentId = $("agent-skills-agent").value;
  if (!agentId) { fill("agent-skills-table", []); return; }
  const names = Object.fromEntries(portalState.skills.map((s) => [s.id, s.name]));
  const current = (await api("GET", `/api/v1/agents/${agentId}/skills`)).skills;
  fill("agent-skills-table", current.map((s) => {
    const remaining = current.filter((other) => other.skill_id !== s.skill_id);
    const r = row(names[s.skill_id], s.proficiency, button(t("remove"), "remove-agent-skill", () => api("PUT", `/api/v1/agents/${agentId}/skills`, { skills: remaining })));
    r.dataset.skillId = s.skill_id;
    return r;
  }));
}

async function refresh() {
  const [agents, queues, entries, calls, voicemails, flows] = await Promise.all([
    api("GET", "/api/v1/agents"),
    api("GET", "/api/v1/queues"),
    api("GET", "/api/v1/entry-points"),
    api("GET", "/api/v1/calls?limit=20"),
    api("GET", "/api/v1/voicemails"),
    api("GET", "/api/v1/ivr/flows"),
  ]);
  const agentName = Object.fromEntries(agents.map((a) => [a.id, a.display_name]));
  const queueName = Object.fromEntries(queues.map((q) => [q.id, q.name]));
  fill("agents-table", agents.map((a) => row(a.display_name, a.email, a.state)));
  fill("queues-table", queues.map((q) => row(q.name, q.agent_ids.map((id) => agentName[id]).join(", "), t(`strategy_${q.strategy}`))));
  fill("entry-points-table", entries.map((e) => {
    const link = document.createElement("a");
    link.href = e.caller_url;
    link.textContent = e.caller_url;
    link.className = "caller-link";
    // The flow its callers go through: only published flows can be chosen.
    const flow = document.createElement("select");
    flow.className = "entry-point-flow";
    options(flow, flows.filter((f) => f.published_version !== null || f.id === e.flow_id).map((f) => [f.id, f.name]), t("no_flow"));
    flow.value = e.flow_id || "";
    flow.addEventListener("change", async () => {
      showError("");
      try {
        await api("PATCH", `/api/v1/entry-points/${e.id}`, { flow_id: flow.value || null });
        flow.dataset.saved = flow.value || "none";
      }
      catch (error) { showError(error.message); flow.value = e.flow_id || ""; }
    });
    const r = row(e.name, queueName[e.queue_id], flow, link);
    r.dataset.entryPointId = e.id;
    return r;
  }));
  fill("voicemails-table", voicemails.map((v) => {
    const play = document.createElement("button");
    play.type = "button";
    play.className = "play-voicemail";
    play.textContent = `▶ ${t("play")}`;
    play.disabled = !v.media_url;
    play.addEventListener("click", () => playAudio($("recording-player"), v.media_url));
    const length = v.duration_ms === null ? "" : Math.round(v.duration_ms / 1000);
    const r = row(new Date(v.created_at).toLocaleString(), v.caller_name, v.queue_name || "", length, play,
      button(t("mark_done"), "voicemail-done", () => api("POST", `/api/v1/voicemails/${v.id}/done`)));
    r.dataset.callId = v.call_id;
    return r;
  }));
  const rows = [];
  for (const c of calls.items) {
    const detail = await api("GET", `/api/v1/calls/${c.id}`);
    const buttons = document.createElement("span");
    for (const r of detail.recordings) {
      const play = document.createElement("button");
      play.type = "button";
      play.className = "play-recording";
      play.textContent = `▶ ${r.party}`;
      play.addEventListener("click", () => playAudio($("recording-player"), r.media_url));
      buttons.append(play);
    }
    rows.push(row(new Date(c.started_at).toLocaleString(), c.caller_name, agentName[detail.agent_id] || "", c.status, detail.wait_s, detail.talk_s, c.end_reason || "", buttons));
  }
  fill("calls-table", rows);
  $("queue-members").replaceChildren($("queue-members").firstElementChild, ...agents.map((a) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = a.id;
    label.append(box, " ", a.display_name);
    return label;
  }));
  $("entry-point-queue").replaceChildren(...queues.map((q) => new Option(q.name, q.id)));
  await refreshAcd(agents, queues);
  await refreshTeams(agents, queues);
}

async function start(tenant) {
  $("login-form").hidden = true;
  $("portal").hidden = false;
  $("portal-tenant").textContent = tenant ? tenant.name : "";
  await refresh();
}

function guarded(handler, { reset = true } = {}) {
  return async (event) => {
    event.preventDefault();
    showError("");
    try { await handler(); await refresh(); if (reset && event.target.reset) event.target.reset(); }
    catch (error) { showError(error.message); }
  };
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("", "login-error");
  try {
    const result = await logIn($("tenant").value.trim(), $("email").value.trim(), $("password").value);
    applyLanguage(result.user.locale || result.tenant.locale);
    await start(result.tenant);
  } catch (error) {
    showError(error.message || t("login_failed"), "login-error");
  }
});

$("agent-form").addEventListener("submit", guarded(async () => {
  const body = { email: $("agent-email").value.trim(), display_name: $("agent-name").value.trim() };
  if ($("agent-password").value) body.password = $("agent-password").value;
  await api("POST", "/api/v1/agents", body);
}));

$("queue-form").addEventListener("submit", guarded(async () => {
  const queue = await api("POST", "/api/v1/queues", { name: $("queue-name").value.trim() });
  const agentIds = [...$("queue-members").querySelectorAll("input:checked")].map((box) => box.value);
  await api("PUT", `/api/v1/queues/${queue.id}/members`, { agent_ids: agentIds });
}));

$("team-form").addEventListener("submit", guarded(async () => {
  await api("POST", "/api/v1/teams", { name: $("team-name").value.trim(), agent_ids: checked("team-agents"), supervisor_ids: checked("team-supervisors") });
}));

$("queue-supervisors-queue").addEventListener("change", () => showQueueSupervisors().catch((error) => showError(error.message)));
$("queue-supervisors-form").addEventListener("submit", guarded(async () => {
  await api("PUT", `/api/v1/queues/${$("queue-supervisors-queue").value}/supervisors`, { user_ids: checked("queue-supervisors") });
  $("queue-supervisors-saved").hidden = false;
}, { reset: false }));

$("entry-point-form").addEventListener("submit", guarded(async () => {
  await api("POST", "/api/v1/entry-points", { name: $("entry-point-name").value.trim(), queue_id: $("entry-point-queue").value });
}));

$("skill-form").addEventListener("submit", guarded(async () => {
  await api("POST", "/api/v1/skills", { name: $("skill-name").value.trim(), description: $("skill-description").value.trim() || null });
}));

$("agent-skills-agent").addEventListener("change", () => showAgentSkills().catch((error) => showError(error.message)));

$("agent-skills-form").addEventListener("submit", guarded(async () => {
  const agentId = $("agent-skills-agent").value;
  const skillId = $("agent-skills-skill").value;
  const current = (await api("GET", `/api/v1/agents/${agentId}/skills`)).skills.filter((s) => s.skill_id !== skillId);
  const proficiency = Number.parseInt($("agent-skills-proficiency").value, 10);
  await api("PUT", `/api/v1/agents/${agentId}/skills`, { skills: [...current, { skill_id: skillId, proficiency }] });
}, { reset: false }));

$("reason-code-form").addEventListener("submit", guarded(async () => {
  await api("POST", "/api/v1/reason-codes", { code: $("reason-code-code").value.trim(), label: $("reason-code-label").value.trim() });
}));

$("wrap-up-code-form").addEventListener("submit", guarded(async () => {
  await api("POST", "/api/v1/wrap-up-codes", { code: $("wrap-up-code-code").value.trim(), label: $("wrap-up-code-label").value.trim() });
}));

$("schedule-form").addEventListener("submit", guarded(async () => {
  const weekly = {};
  for (const input of document.querySelectorAll(".schedule-hours")) {
    const hours = parseHours(input.value);
    if (hours.length) weekly[input.dataset.day] = hours;
  }
  await api("POST", "/api/v1/schedules", {
    name: $("schedule-name").value.trim(), time_zone: $("schedule-time-zone").value.trim(), weekly, holidays: parseHolidays($("schedule-holidays").value),
  });
}));

$("rules-queue").addEventListener("change", () => {
  $("queue-rules-saved").hidden = true;
  showQueueRules().catch((error) => showError(error.message));
});

$("queue-rules-form").addEventListener("submit", guarded(async () => {
  const queueId = $("rules-queue").value;
  await api("PATCH", `/api/v1/queues/${queueId}`, readQueueRules());
  const skills = [...document.querySelectorAll(".rules-skill")].filter((line) => line.querySelector(".rules-skill-use").checked).map((line) => ({
    skill_id: line.dataset.skillId,
    min_proficiency: Number.parseInt(line.querySelector(".rules-skill-min").value, 10),
    required: line.querySelector(".rules-skill-required").checked,
  }));
  await api("PUT", `/api/v1/queues/${queueId}/skills`, { skills });
  $("queue-rules-saved").hidden = false;
}, { reset: false }));

$("queue-rules-form").addEventListener("input", () => { $("queue-rules-saved").hidden = true; });

if (Intl.supportedValuesOf) $("time-zones").replaceChildren(...Intl.supportedValuesOf("timeZone").map((zone) => new Option(zone)));

$("logout-button").addEventListener("click", logOut);

/** Single sign-on lands here with the tokens in the fragment (docs/identity.md). */
async function adoptSingleSignOn() {
  const params = new URLSearchParams(location.hash.slice(1));
  const accessToken = params.get("access_token");
  if (!accessToken) return;
  history.replaceState(null, "", location.pathname + location.search);
  session.save({ access_token: accessToken, refresh_token: params.get("refresh_token") });
  const me = await api("GET", "/api/v1/me");
  session.save({ ...session.load(), user: me.user, tenant: me.tenant });
  applyLanguage(me.user.locale || me.tenant.locale);
}

adoptSingleSignOn()
  .then(() => {
    const saved = session.load();
    if (!saved) return;
    applyLanguage((saved.user && saved.user.locale) || (saved.tenant && saved.tenant.locale));
    return start(saved.tenant);
  })
  .catch((error) => { session.clear(); showError(error.message, "login-error"); });
