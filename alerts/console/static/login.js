"use strict";
// Posts the token as JSON; the answer sets an HttpOnly session cookie this script never sees.
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  const button = document.getElementById("login");
  error.hidden = true;
  button.disabled = true;
  try {
    const response = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token: document.getElementById("token").value}),
    });
    if (response.ok) {
      location.assign("/console" + (/^#alert=[0-9a-f-]{36}$/.test(location.hash) ? location.hash : ""));
      return;
    }
    error.textContent = response.status === 401 ? "Wrong token." : `Login failed (${response.status}).`;
  } catch (e) {
    error.textContent = "The console cannot be reached.";
  } finally {
    button.disabled = false;
  }
  error.hidden = false;
});
