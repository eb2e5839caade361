// The invitation page: /invite#<token>.  The token is moved out of the address
// bar at once (kept for this tab only), the user chooses a password, and the
// signed-in session is handed to the portal.
import { $, publicApi, showError, t } from "./common.js";

const KEY = "kefu.invite";
const fromLink = decodeURIComponent(location.hash.slice(1));
if (fromLink) {
  sessionStorage.setItem(KEY, fromLink);
  history.replaceState(null, "", location.pathname + location.search);
}
const token = sessionStorage.getItem(KEY);
if (!token) showError(t("invite_missing"), "invite-error");

$("invite-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("", "invite-error");
  if ($("new-password").value !== $("confirm-password").value) {
    showError(t("passwords_differ"), "invite-error");
    return;
  }
  try {
    const signedIn = await publicApi("POST", "/api/v1/invitations/accept", { token, password: $("new-password").value });
    sessionStorage.removeItem(KEY);
    // The portal keeps its session under "kefu.session.portal" (see common.js).
    sessionStorage.setItem("kefu.session.portal", JSON.stringify(signedIn));
    location.assign("/portal/");
  } catch (error) {
    showError(error.message, "invite-error");
  }
});
