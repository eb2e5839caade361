// The tenant admin's portal: agents, queues, entry points and recent calls.
import { $, api, applyLanguage, fetchBlob, logIn, session, showError, t } from "./common.js";

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

async function refresh() {
  const [agents, queues, entries, calls] = await Promise.all([
    api("GET", "/api/v1/agents"),
    api("GET", "/api/v1/queues"),
    api("GET", "/api/v1/entry-points"),
    api("GET", "/api/v1/calls?limit=20"),
  ]);
  const agentName = Object.fromEntries(agents.map((a) => [a.id, a.display_name]));
  const queueName = Object.fromEntries(queues.map((q) => [q.id, q.name]));
  fill("agents-table", agents.map((a) => row(a.display_name, a.email, a.state)));
  fill("queues-table", queues.map((q) => row(q.name, q.agent_ids.map((id) => agentName[id]).join(", "))));
  fill("entry-points-table", entries.map((e) => {
    const link = document.createElement("a");
    link.href = e.caller_url;
    link.textContent = e.caller_url;
    link.className = "caller-link";
    return row(e.name, queueName[e.queue_id], link);
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
      play.addEventListener("click", async () => {
        const player = $("recording-player");
        player.src = URL.createObjectURL(await fetchBlob(r.media_url));
        player.hidden = false;
        player.play();
      });
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
}

async function start(tenant) {
  $("login-form").hidden = true;
  $("portal").hidden = false;
  $("portal-tenant").textContent = tenant ? tenant.name : "";
  await refresh();
}

function guarded(handler) {
  return async (event) => {
    event.preventDefault();
    showError("");
    try { await handler(); await refresh(); event.target.reset && event.target.reset(); }
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

$("entry-point-form").addEventListener("submit", guarded(async () => {
  await api("POST", "/api/v1/entry-points", { name: $("entry-point-name").value.trim(), queue_id: $("entry-point-queue").value });
}));

$("logout-button").addEventListener("click", async () => {
  const current = session.load();
  if (current) await fetch("/api/v1/auth/logout", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: current.refresh_token }) }).catch(() => null);
  session.clear();
  location.reload();
});

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
