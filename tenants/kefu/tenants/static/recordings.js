// The recordings page (docs/recordings.md): search recorded calls (GET /api/v1/recordings),
// play a call's parties in step with "hear alone" per party (./player.js, short-lived
// signed links), download one party's file (a download link), put a call on legal hold
// or release it, and set how long recordings are kept (tenant and per queue).
// Rows: #recordings-table tr[data-call-id] (.held[data-held], .play-button,
// .download-button[data-party], .hold-button); #queue-retention-table tr[data-queue-id]
// (.queue-retention-days, .save-queue-retention-button); a.evaluate-link opens the QA page on the call.
import { $, api, el, logOut, showError, signedInPage, t } from "./common.js";
import { CallPlayer } from "./player.js";

let permissions = [];
let cursor = null;
let player = null;
let names = { agents: {}, queues: {} };

function button(className, label, onClick) {
  const b = el("button", { type: "button", className, textContent: label });
  b.addEventListener("click", async () => {
    showError("");
    try { await onClick(b); } catch (error) { showError(error.message); }
  });
  return b;
}

function talk(seconds) {
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function query() {
  const params = new URLSearchParams();
  const add = (name, value) => { if (value !== "" && value !== null && value !== undefined) params.set(name, value); };
  add("caller", $("search-caller").value.trim());
  add("agent_id", $("search-agent").value);
  add("queue_id", $("search-queue").value);
  add("started_from", $("search-from").value ? new Date($("search-from").value).toISOString() : "");
  add("started_to", $("search-to").value ? new Date($("search-to").value).toISOString() : "");
  add("disposition", $("search-disposition").value.trim());
  add("min_talk_s", $("search-min-talk").value);
  add("max_talk_s", $("search-max-talk").value);
  add("qa_status", $("search-qa").value);
  add("held", $("search-held").value);
  return params;
}

function callRow(call) {
  const tr = el("tr");
  tr.dataset.callId = call.call_id;
  const actions = el("span", { className: "actions" });
  actions.append(button("play-button", t("play"), () => play(call)));
  for (const party of call.parties) {
    const save = button("download-button", `${t("download")} · ${t(`party_${party.party}`)}`, () => download(party.recording_id));
    save.dataset.party = party.party;
    actions.append(save);
  }
  if (permissions.includes("qa.evaluate")) {
    actions.append(el("a", { className: "evaluate-link", href: `/qa/?call=${call.call_id}`, textContent: t("evaluate") }));
  }
  if (permissions.includes("recordings.manage")) {
    actions.append(button("hold-button", call.held ? t("release_hold") : t("legal_hold"), () => toggleHold(call)));
  }
  const held = el("span", { className: "held", textContent: call.held ? ` · ${t("held")}` : "" });
  held.dataset.held = String(call.held);
  const cells = [
    el("code", { textContent: call.serial }), new Date(call.started_at).toLocaleString(), call.caller_name || call.caller_ref || "",
    call.agent ? call.agent.name || "" : "", call.queue ? call.queue.name || "" : "", talk(call.talk_s), call.disposition_code || "",
  ];
  for (const content of cells) tr.append(el("td", {}, content));
  tr.firstChild.append(held);
  tr.append(el("td", {}, actions));
  return tr;
}

async function search({ more = false } = {}) {
  const params = query();
  if (more && cursor) params.set("cursor", cursor);
  const page = await api("GET", `/api/v1/recordings?${params}`);
  const body = $("recordings-table").querySelector("tbody");
  const rows = page.items.map(callRow);
  if (more) body.append(...rows); else body.replaceChildren(...rows);
  cursor = page.next_cursor;
  $("more-button").hidden = !cursor;
  $("no-recordings").hidden = body.children.length > 0;
}

async function play(call) {
  if (player) player.stop();
  $("player-card").hidden = false;
  $("player-serial").textContent = call.serial;
  const playback = await api("POST", `/api/v1/calls/${call.call_id}/playback`);
  player = new CallPlayer($("player"), playback, { onError: (error) => showError(error.message) });
  await player.play();
}

async function download(recordingId) {
  const link = await api("POST", `/api/v1/recordings/${recordingId}/links`, { purpose: "download" });
  const a = el("a", { href: link.url });
  a.setAttribute("download", "");
  document.body.append(a);
  a.click();
  a.remove();
}

async function toggleHold(call) {
  if (call.held) {
    await api("DELETE", `/api/v1/calls/${call.call_id}/legal-hold`);
  } else {
    const reason = prompt(t("hold_reason_prompt"));
    if (!reason) return;
    await api("PUT", `/api/v1/calls/${call.call_id}/legal-hold`, { reason });
  }
  await search();
}

async function showRetention() {
  const retention = await api("GET", "/api/v1/recordings/retention");
  $("retention").hidden = false;
  $("retention-days").value = retention.retention_days ?? "";
  const overrides = Object.fromEntries(retention.queues.map((q) => [q.queue_id, q.retention_days]));
  const rows = Object.entries(names.queues).map(([queueId, name]) => {
    const input = el("input", { type: "number", min: 1, max: 3650, className: "queue-retention-days", value: overrides[queueId] ?? "" });
    const save = button("save-queue-retention-button", t("save"), async () => {
      if (input.value === "") await api("DELETE", `/api/v1/recordings/retention/queues/${queueId}`);
      else await api("PUT", `/api/v1/recordings/retention/queues/${queueId}`, { retention_days: Number.parseInt(input.value, 10) });
      await showRetention();
    });
    const tr = el("tr", {}, el("td", { textContent: name }), el("td", {}, input), el("td", {}, save));
    tr.dataset.queueId = queueId;
    return tr;
  });
  $("queue-retention-table").querySelector("tbody").replaceChildren(...rows);
}

async function start() {
  const me = await api("GET", "/api/v1/me");
  permissions = me.permissions;
  $("login-form").hidden = true;
  $("recordings").hidden = false;
  const [agents, queues] = await Promise.all([
    api("GET", "/api/v1/agents").catch(() => []),
    api("GET", "/api/v1/queues").catch(() => []),
  ]);
  names = { agents: Object.fromEntries(agents.map((a) => [a.id, a.display_name])), queues: Object.fromEntries(queues.map((q) => [q.id, q.name])) };
  for (const [id, map] of [["search-agent", names.agents], ["search-queue", names.queues]]) {
    const select = $(id);
    select.replaceChildren(select.options[0], ...Object.entries(map).map(([value, text]) => new Option(text, value)));
  }
  if (permissions.includes("recordings.manage")) await showRetention();
  await search();
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  try { await search(); } catch (error) { showError(error.message); }
});
$("more-button").addEventListener("click", async () => {
  showError("");
  try { await search({ more: true }); } catch (error) { showError(error.message); }
});
$("retention-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const value = $("retention-days").value;
  try {
    await api("PUT", "/api/v1/recordings/retention", { retention_days: value === "" ? null : Number.parseInt(value, 10) });
    $("retention-saved").hidden = false;
  } catch (error) { showError(error.message); }
});
$("logout-button").addEventListener("click", () => logOut());

signedInPage(start);
