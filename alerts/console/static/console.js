"use strict";
// RoomWarden operator console. Vanilla JS, no build step. Everything said in a room is shown
// with textContent / text nodes only, never parsed as HTML.

const state = {
  me: null,
  alerts: new Map(),     // alert_id -> {alert, review, row}
  selected: null,        // alert_id
  requestIds: new Map(), // "alertId/action" -> request id (one per opened alert and action)
  rooms: new Map(),      // room_id -> risk view
  halfLife: 300,
};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);  // available on plain http too (randomUUID is not)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(path, options = {}) {
  const response = await fetch(path, {credentials: "same-origin", ...options});
  if (response.status === 401) {
    location.assign("/");
    throw new Error("logged out");
  }
  return response;
}

function clock(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
}

function pct(p) {
  return p === null || p === undefined ? "–" : `${Math.round(p * 100)} %`;
}

const STATUS_LABEL = {acknowledge: "acknowledged", dismiss: "dismissed", escalate: "escalated"};

// --- the live table -------------------------------------------------------------------------

function addOption(select, value) {
  if ([...select.options].some((o) => o.value === value)) return;
  select.append(el("option", {value}, value));
}

function statusCell(review) {
  if (!review) return el("span", {class: "status open"}, "open");
  return el("span", {class: `status ${review.action}`,
                     title: `${review.reviewer} (${review.role})`},
            STATUS_LABEL[review.action] || review.action);
}

function upsertAlert(view) {
  const alert = view.alert;
  const known = state.alerts.get(alert.alert_id);
  if (known) {  // a snapshot after a reconnect: keep the row, refresh the review
    applyReview(view.review, alert.alert_id);
    return;
  }
  const row = el("tr", {"data-alert-id": alert.alert_id, class: `sev-row-${alert.severity}`,
                        tabIndex: 0},
    el("td", {class: "time", title: alert.speech.end_time}, clock(alert.speech.end_time)),
    el("td", {class: "room"}, alert.room_id),
    el("td", {class: "speaker"}, alert.speaker_name || alert.speaker_id),
    el("td", {class: "category"}, alert.category),
    el("td", {}, el("span", {class: `sev sev-${alert.severity}`}, alert.severity)),
    el("td", {class: "text"}, highlighted(alert.text, alert.match)),
    el("td", {class: "status-cell"}, statusCell(view.review)));
  row.addEventListener("click", () => openAlert(alert.alert_id));
  row.addEventListener("keydown", (e) => { if (e.key === "Enter") openAlert(alert.alert_id); });
  const entry = {alert, review: view.review || null, row};
  state.alerts.set(alert.alert_id, entry);
  insertSorted(entry);
  addOption($("f-category"), alert.category);
  addOption($("f-room"), alert.room_id);
  applyFilter(entry);
  row.classList.add("fresh");
  setTimeout(() => row.classList.remove("fresh"), 2500);
  updateCount();
}

function insertSorted(entry) {
  // Newest speech first; live alerts nearly always go on top.
  const tbody = $("alerts");
  const t = entry.alert.speech.end_time;
  for (const row of tbody.rows) {
    const other = state.alerts.get(row.dataset.alertId);
    if (other && other.alert.speech.end_time <= t) {
      tbody.insertBefore(entry.row, row);
      return;
    }
  }
  tbody.append(entry.row);
}

function highlighted(text, match) {
  const span = el("span", {});
  if (!match || match.end > text.length) {
    span.append(text);
    return span;
  }
  span.append(text.slice(0, match.start), el("mark", {}, text.slice(match.start, match.end)),
              text.slice(match.end));
  return span;
}

function applyReview(review, alertId) {
  if (!review) return;
  const entry = state.alerts.get(alertId || review.alert_id);
  if (!entry) return;
  if (entry.review && entry.review.reviewed_at > review.reviewed_at) return;
  entry.review = review;
  const cell = entry.row.querySelector(".status-cell");
  cell.replaceChildren(statusCell(review));
  applyFilter(entry);
  if (state.selected === entry.alert.alert_id) showReview(review);
}

function filters() {
  return {severity: $("f-severity").value, category: $("f-category").value,
          room: $("f-room").value, status: $("f-status").value};
}

function applyFilter(entry, f = filters()) {
  const a = entry.alert;
  const status = entry.review ? entry.review.action : "open";
  entry.row.hidden = (f.severity && a.severity !== f.severity)
    || (f.category && a.category !== f.category) || (f.room && a.room_id !== f.room)
    || (f.status && status !== f.status);
}

function applyFilters() {
  const f = filters();
  for (const entry of state.alerts.values()) applyFilter(entry, f);
  updateCount();
}

function updateCount() {
  const shown = [...state.alerts.values()].filter((e) => !e.row.hidden).length;
  $("count").textContent = `${shown} of ${state.alerts.size} alerts`;
  $("empty").hidden = state.alerts.size > 0;
}

// --- one alert ------------------------------------------------------------------------------

async function openAlert(alertId) {
  state.selected = alertId;
  for (const row of $("alerts").rows) row.classList.toggle("selected", row.dataset.alertId === alertId);
  for (const action of ["acknowledge", "dismiss", "escalate"]) {
    state.requestIds.set(`${alertId}/${action}`, randomId());
  }
  $("action-error").hidden = true;
  $("note").value = "";
  const response = await api(`/api/alerts/${encodeURIComponent(alertId)}`);
  if (!response.ok) {
    showError(`Could not load the alert (${response.status}).`);
    return;
  }
  const detail = await response.json();
  if (state.selected !== alertId) return;  // another row was clicked meanwhile
  renderDetail(detail);
}

function renderDetail(d) {
  const a = d.alert;
  $("detail").hidden = false;
  $("detail").dataset.alertId = a.alert_id;
  $("d-title").textContent = `${a.category} · ${a.rule_id}`;
  const sev = $("d-severity");
  sev.textContent = a.severity;
  sev.className = `sev sev-${a.severity}`;
  $("d-speaker").textContent = d.speaker.speaker_name
    ? `${d.speaker.speaker_name} (${d.speaker.speaker_id})` : d.speaker.speaker_id;
  $("d-room").textContent = a.room_id;
  $("d-rule").textContent = `${d.rule.rule_id} (${d.rule.category}, ${d.rule.severity})`;
  $("d-suggestion").textContent = d.rule.suggestion;
  $("d-match").textContent = `“${a.match.text}” · ${d.score.match_kind}`;
  const parts = [];
  if (d.score.score !== null && d.score.score !== undefined) parts.push(`score ${pct(d.score.score)}`);
  parts.push(`ASR confidence ${pct(d.score.confidence)} (${d.score.confidence_class})`);
  if (d.score.classifier_probability !== null && d.score.classifier_probability !== undefined) {
    parts.push(`classifier ${pct(d.score.classifier_probability)}`);
  }
  $("d-score").textContent = parts.join(" · ");
  const policy = d.rule.policy || {};
  $("d-policy").textContent = `${policy.name || "?"} ${policy.version || ""} (${(policy.sha256 || "").slice(0, 12)})`;
  $("d-window").textContent = `(${d.window_s} s of the room)`;

  const end = Date.parse(a.speech.end_time) / 1000;
  const list = $("context");
  list.replaceChildren(...d.context.map((line) => el("li",
    {class: line.flagged ? "line flagged" : "line"},
    el("span", {class: "when"}, `${Math.round(line.end_time - end)} s`),
    el("span", {class: "who"}, line.speaker_name || line.speaker_id),
    el("span", {class: "said"}, line.match ? highlighted(line.text, line.match) : line.text))));

  const clip = $("d-clip");
  if (d.clip) {
    const audio = el("audio", {id: "clip", controls: true, preload: "auto", src: d.clip});
    clip.replaceChildren(audio);
  } else {
    clip.replaceChildren(el("p", {class: "muted"}, "No audio was kept for this alert."));
  }
  showReview(d.review || (state.alerts.get(a.alert_id) || {}).review);
  const mayReview = state.me && state.me.may_review;
  for (const button of document.querySelectorAll(".actions button")) {
    button.disabled = !mayReview;
    button.title = mayReview ? "" : "Your role cannot review alerts";
  }
}

function showReview(review) {
  $("d-review").textContent = review
    ? `${STATUS_LABEL[review.action] || review.action} by ${review.reviewer} (${review.role}) at ${clock(review.reviewed_at)}${review.note ? ` — ${review.note}` : ""}`
    : "Not reviewed yet.";
}

function showError(message) {
  const error = $("action-error");
  error.textContent = message;
  error.hidden = false;
}

async function review(action) {
  const alertId = state.selected;
  if (!alertId) return;
  const buttons = document.querySelectorAll(".actions button");
  buttons.forEach((b) => { b.disabled = true; });
  $("action-error").hidden = true;
  try {
    const response = await api(`/api/alerts/${encodeURIComponent(alertId)}/review`, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({action, note: $("note").value,
                            request_id: state.requestIds.get(`${alertId}/${action}`)}),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      showError(body.error || `The review was not recorded (${response.status}).`);
      return;
    }
    applyReview(body.review);
  } catch (e) {
    showError("The console cannot be reached; try again (it is safe to repeat).");
  } finally {
    buttons.forEach((b) => { b.disabled = !(state.me && state.me.may_review); });
  }
}

// --- risk -----------------------------------------------------------------------------------

function upsertRisk(view) {
  if (!view || !view.room_id) return;
  state.rooms.set(view.room_id, view);
  renderRisk();
}

function renderRisk() {
  const rooms = [...state.rooms.values()].sort((a, b) => b.risk_room - a.risk_room);
  const top = Math.max(1, ...rooms.map((r) => r.risk_room));
  $("risk").replaceChildren(...rooms.map((r) => el("li", {"data-room-id": r.room_id},
    el("div", {class: "risk-head"},
      el("button", {type: "button", class: "link", title: "Show this room's alerts",
                    onclick: () => { $("f-room").value = r.room_id; applyFilters(); }},
         r.room_id),
      el("span", {class: "risk-value"}, r.risk_room.toFixed(1))),
    riskBar(r.risk_room / top),
    el("div", {class: "muted small"}, `last: ${r.last_action.replaceAll("_", " ")}`),
    el("ul", {class: "speakers"}, ...r.speakers.slice(0, 5).map((s) => el("li", {},
      el("span", {}, s.speaker_id), el("span", {class: "risk-value"}, s.risk_speaker.toFixed(1))))))));
  $("risk-empty").hidden = rooms.length > 0;
}

function riskBar(fraction) {
  const fill = el("span", {});
  fill.style.width = `${Math.round(100 * Math.min(Math.max(fraction, 0), 1))}%`;  // CSSOM: CSP-safe
  return el("div", {class: "bar"}, fill);
}

async function loadRisk() {
  const response = await api("/api/rooms/risk");
  if (!response.ok) return;
  const body = await response.json();
  state.halfLife = body.half_life_s;
  $("half-life").textContent = String(body.half_life_s);
  state.rooms = new Map(body.rooms.map((r) => [r.room_id, r]));
  renderRisk();
}

// --- the stream -----------------------------------------------------------------------------

function setLive(on, text) {
  const live = $("live");
  live.textContent = text;
  live.classList.toggle("off", !on);
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => { setLive(true, "live"); loadRisk(); });
  source.addEventListener("alert", (e) => upsertAlert(JSON.parse(e.data)));
  source.addEventListener("review", (e) => applyReview(JSON.parse(e.data)));
  source.addEventListener("risk", (e) => upsertRisk(JSON.parse(e.data)));
  source.addEventListener("error", async () => {
    setLive(false, "reconnecting…");
    if (source.readyState === EventSource.CLOSED) {  // refused (logged out?): check, retry
      await api("/api/me");
      setTimeout(connect, 2000);
    }
  });
}

async function main() {
  const response = await api("/api/me");
  state.me = await response.json();
  $("who").textContent = `${state.me.name} · ${state.me.role}`;
  for (const id of ["f-severity", "f-category", "f-room", "f-status"]) {
    $(id).addEventListener("change", applyFilters);
  }
  for (const button of document.querySelectorAll(".actions button")) {
    button.addEventListener("click", () => review(button.dataset.action));
  }
  $("logout").addEventListener("click", async () => {
    await fetch("/api/logout", {method: "POST", credentials: "same-origin"});
    location.assign("/");
  });
  updateCount();
  connect();
  setInterval(loadRisk, 10000);  // decay keeps going between escalations
  // /alerts/<id> (the link in a host warning) lands here as #alert=<id>
  const linked = /^#alert=([0-9a-f-]{36})$/.exec(location.hash);
  if (linked) openAlert(linked[1]);
}

main();
