// Billing (docs/billing.md): the tenant's plan, seats rented and in use, renting and
// releasing seats, the seat ledger and the invoices; with Stripe, links to add a payment
// method (Checkout) and to Stripe's Billing Portal.  Each open seat form carries one
// Idempotency-Key, so a double click (or a retry after a lost answer) is one change;
// a new key is drawn once a change went through.
import { $, api, logOut, showError, signedInPage, t } from "./common.js";

let changeKey = crypto.randomUUID();

function money(amount, currency) {
  return new Intl.NumberFormat(document.documentElement.lang, { style: "currency", currency: currency.toUpperCase() }).format(amount / 100);
}

function day(iso) {
  return new Date(iso).toLocaleDateString(document.documentElement.lang);
}

function row(...cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

async function refresh() {
  const [account, ledger, invoices] = await Promise.all([
    api("GET", "/api/v1/billing"), api("GET", "/api/v1/billing/ledger"), api("GET", "/api/v1/billing/invoices"),
  ]);
  const plan = account.plan;
  $("plan-name").textContent = `${plan.name} — ${money(plan.seat_price, plan.currency)} ${t("per_seat_month")}, ${plan.included_minutes_per_seat} ${t("included_minutes")}`;
  $("seats").textContent = account.seats;
  $("seats-in-use").textContent = account.seats_in_use;
  $("billing-status").textContent = account.status;
  $("billing-period").textContent = `${day(account.period_start)} – ${day(account.period_end)}`;
  $("billing-notice").textContent = account.notice || "";
  $("billing-notice").hidden = !account.notice;
  $("billing-notice").classList.toggle("error", account.status !== "active");
  $("stripe-actions").hidden = account.mode !== "stripe";
  $("sync-status").textContent = account.mode === "stripe" ? t(account.stripe_synced ? "synced_with_stripe" : "syncing_with_stripe") : "";
  $("invoices-table").tBodies[0].replaceChildren(...invoices.map((invoice) => {
    let link = invoice.sent_to_stripe ? "" : t("not_sent_to_stripe");
    if (invoice.hosted_url) link = Object.assign(document.createElement("a"), { href: invoice.hosted_url, textContent: t("view"), target: "_blank", rel: "noopener" });
    return row(invoice.number, `${day(invoice.period_start)} – ${day(invoice.period_end)}`, invoice.status,
      money(invoice.total, invoice.currency), money(invoice.amount_due, invoice.currency), link);
  }));
  $("ledger-table").tBodies[0].replaceChildren(...ledger.map((entry) => row(
    new Date(entry.created_at).toLocaleString(document.documentElement.lang), entry.delta > 0 ? `+${entry.delta}` : `${entry.delta}`, entry.seats_after, entry.actor,
  )));
}

async function changeSeats(kind) {
  showError("");
  const count = Number.parseInt($("seat-count").value, 10);
  for (const button of [$("rent-button"), $("release-button")]) button.disabled = true;
  try {
    await api("POST", "/api/v1/billing/seats", { [kind]: count }, { "Idempotency-Key": changeKey });
    changeKey = crypto.randomUUID();
    await refresh();
  } catch (error) {
    if (error.code === "idempotency_key_reused") changeKey = crypto.randomUUID();
    showError(error.message);
  } finally {
    for (const button of [$("rent-button"), $("release-button")]) button.disabled = false;
  }
}

$("seats-form").addEventListener("submit", (event) => { event.preventDefault(); changeSeats("rent"); });
$("release-button").addEventListener("click", () => changeSeats("release"));
$("seat-count").addEventListener("input", () => { changeKey = crypto.randomUUID(); });

async function goTo(path) {
  showError("");
  try {
    const link = await api("POST", path, { return_url: `${location.origin}/portal/billing` });
    location.assign(link.url);
  } catch (error) {
    showError(error.message);
  }
}

$("checkout-button").addEventListener("click", () => goTo("/api/v1/billing/checkout"));
$("portal-button").addEventListener("click", () => goTo("/api/v1/billing/portal"));
$("logout-button").addEventListener("click", logOut);

async function start() {
  $("login-form").hidden = true;
  $("billing").hidden = false;
  await refresh();
}

signedInPage(start);
