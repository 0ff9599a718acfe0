// fennec dashboard: reads /api/v1 and follows the live stream. No
// framework, no inline script (the page's CSP forbids it), charts by
// uPlot (vendor/, MIT).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  };
  const state = {
    token: sessionStorage.getItem("fennec-token") || "",
    session: null,
    devices: new Map(), // id -> device
    rows: new Map(), // id -> <tr>
    rounds: [],
    fed: null,
    groups: new Map(),
    charts: {},
    timing: { updates: 0, updateMS: 0 },
  };
  window.fennecDash = state; // for the browser test and the curious

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    if (state.token) h.Authorization = "Bearer " + state.token;
    return h;
  }
  async function api(path, opts) {
    const res = await fetch("api/v1/" + path, Object.assign({ headers: headers(), cache: "no-store" }, opts || {}));
    if (res.status === 401) { showSignIn("Sign in to see this fleet."); throw new Error("unauthorised"); }
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  // ---- formatting
  const fmtTime = (t) => {
    if (!t || t.startsWith("0001")) return "never";
    const s = Math.round((Date.now() - Date.parse(t)) / 1000);
    if (s < 2) return "just now";
    if (s < 120) return s + "s ago";
    if (s < 7200) return Math.round(s / 60) + "m ago";
    return new Date(t).toLocaleString();
  };
  const fmtBytes = (n) => n < 1024 ? n + " B" : n < 1 << 20 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
  const num = (v, d) => v === undefined || v === null ? "–" : Number(v).toFixed(d);
  const badge = (cls, text) => el("span", { class: "badge " + cls, text: text });

  // ---- views
  function route() {
    const h = (location.hash || "#fleet").slice(1);
    const [view, arg] = h.split("/");
    for (const v of ["fleet", "rollouts", "training"]) {
      $("view-" + v).hidden = v !== view;
      $("tab-" + v).setAttribute("aria-selected", String(v === view));
    }
    if (view === "fleet" && arg) openDevice(decodeURIComponent(arg));
    else $("device").hidden = true;
    if (view === "training") Object.values(state.charts).forEach(resize);
  }

  function showSignIn(msg) {
    $("signin").hidden = false;
    $("signin-error").textContent = msg || "";
    for (const v of document.querySelectorAll(".view")) v.hidden = true;
  }

  // ---- fleet
  function deviceRow(d) {
    let tr = state.rows.get(d.id);
    const cells = [
      el("th", { scope: "row" }, el("a", { href: "#fleet/" + encodeURIComponent(d.id), text: d.id })),
      el("td", { text: d.group || "–" }),
      el("td", {}, badge(d.online ? "online" : "offline", d.online ? "online" : "offline")),
      el("td", { text: fmtTime(d.last_seen), "data-t": d.last_seen || "" }),
      el("td", { text: d.module ? d.module + " " + d.version : "–" }),
      el("td", { text: d.model_version ? "v" + d.model_version : "–" }),
      el("td", {}, d.healthy === undefined ? "–" : badge(d.healthy ? "healthy" : "unhealthy", d.healthy ? "healthy" : "unhealthy")),
      el("td", {}, d.state ? badge(d.state, d.state) : "–"),
    ];
    if (!tr) {
      tr = el("tr", { "data-device": d.id });
      state.rows.set(d.id, tr);
    }
    tr.replaceChildren(...cells);
    tr.className = d.online ? "" : "offline";
    tr.dataset.online = String(d.online);
    tr.hidden = !matches(d);
    return tr;
  }
  function matches(d) {
    const q = $("f-q").value.trim().toLowerCase(), g = $("f-group").value, s = $("f-status").value;
    if (g && d.group !== g) return false;
    if (s === "online" && !d.online) return false;
    if (s === "offline" && d.online) return false;
    if (s === "unhealthy" && d.healthy !== false) return false;
    if (q && !(d.id + " " + (d.group || "") + " " + (d.module || "") + " " + (d.version || "") + " " + (d.state || "")).toLowerCase().includes(q)) return false;
    return true;
  }
  function refilter() { for (const [id, tr] of state.rows) tr.hidden = !matches(state.devices.get(id)); fleetCount(); }
  function fleetCount() {
    let on = 0;
    for (const d of state.devices.values()) if (d.online) on++;
    $("fleet-count").textContent = `${state.devices.size} devices, ${on} online, ${state.devices.size - on} offline`;
  }
  async function loadFleet() {
    const f = await api("fleet?limit=10000");
    const sel = $("f-group"), cur = sel.value;
    sel.replaceChildren(el("option", { value: "", text: "all" }), ...f.groups.filter((g) => g.group).map((g) => el("option", { value: g.group, text: `${g.group} (${g.online}/${g.devices})` })));
    sel.value = cur;
    const frag = document.createDocumentFragment();
    for (const d of f.devices) { state.devices.set(d.id, d); frag.append(deviceRow(d)); }
    $("fleet-rows").replaceChildren(frag);
    fleetCount();
  }
  // A round changes its participants' model versions: reload the fleet
  // after rounds, at most every 5 seconds.
  let fleetTimer = null;
  function staleFleet() {
    if (fleetTimer) return;
    fleetTimer = setTimeout(() => { fleetTimer = null; loadFleet().catch(() => {}); }, 5000);
  }
  function updateDevice(d) {
    const t0 = performance.now();
    const known = state.devices.has(d.id);
    state.devices.set(d.id, d);
    const tr = deviceRow(d);
    if (!known) $("fleet-rows").append(tr);
    fleetCount();
    if (!$("device").hidden && $("device").dataset.id === d.id) openDevice(d.id);
    state.timing.updates++; state.timing.updateMS += performance.now() - t0;
  }
  async function openDevice(id) {
    const box = $("device");
    let d;
    try { d = await api("devices/" + encodeURIComponent(id)); } catch (e) { return; }
    box.dataset.id = id;
    $("device-h").textContent = "Device " + d.id;
    const facts = [["Group", d.group || "–"], ["Status", d.online ? "online" : "offline"], ["Last seen", fmtTime(d.last_seen)],
      ["Module", d.module ? `${d.module} ${d.version}` : "–"], ["Previous", d.previous || "–"], ["Rollout state", d.state || "–"],
      ["Reason", d.reason || "–"], ["Global model", d.model_version ? "v" + d.model_version : "–"], ["Rounds taken part in", String(d.rounds)]];
    if (d.uplink) {
      facts.push(["Uplink delivered", String(d.uplink_delivered || 0)],
        ["Uplink waiting", (d.uplink_lag || 0) + (d.uplink_contact ? " at last contact, " + fmtTime(d.uplink_contact) : "")]);
      if (d.uplink_error) facts.push(["Uplink error", d.uplink_error]);
    }
    $("device-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    $("device-events").replaceChildren(...(d.events.length ? d.events.map(evItem) : [el("li", { text: "none yet" })]));
    box.hidden = false;
  }
  function evItem(e) {
    return el("li", {}, el("time", { datetime: e.time, text: new Date(e.time).toLocaleTimeString() }), " ",
      el("strong", { text: e.who || "" }), " " + e.what + (e.group && !e.device ? " in " + e.group : "") + (e.reason ? ": " + e.reason : ""));
  }

  // ---- rollouts
  function groupCard(g) {
    const card = el("section", { class: "card group", "data-group": g.group, "aria-labelledby": "g-" + g.group });
    const d = g.desired;
    card.append(el("h3", { id: "g-" + g.group }, g.group + " ", badge(g.phase, g.phase)));
    const facts = [["Desired", d ? `${d.module} ${d.version} at ${d.canary}%` : "nothing deployed"],
      ["Started by", d ? `${d.operator || "–"} at ${new Date(d.time).toLocaleString()}` : "–"],
      ["Progress", `${g.done} of ${g.selected} selected devices on it, ${g.failed} refused, failed or rolled back (${g.devices} in the group)`],
      ["Actual versions", Object.entries(g.versions).map(([v, n]) => `${v}: ${n}`).join(", ") || "–"]];
    card.append(el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
    const bar = el("span");
    bar.style.width = (g.selected ? Math.round(100 * g.done / g.selected) : 0) + "%";
    card.append(el("div", { class: "progress", role: "progressbar", "aria-label": g.group + " rollout progress", "aria-valuemin": "0", "aria-valuemax": String(g.selected), "aria-valuenow": String(g.done) }, bar));
    if (g.problems && g.problems.length) {
      card.append(el("h4", { text: "Refusals, failures, rollbacks" }), el("ul", { class: "events" }, ...g.problems.map((p) => el("li", {}, el("strong", { text: p.device }), ` ${p.what}: ${p.reason || "no reason given"}`))));
    }
    if (g.history && g.history.length > 1) {
      card.append(el("h4", { text: "History" }), el("ol", { class: "events" }, ...g.history.map((h) => el("li", { text: `${new Date(h.time).toLocaleString()} ${h.operator || "–"}: ${h.module} ${h.version} at ${h.canary}%` }))));
    }
    if (d && state.session && state.session.can_deploy) {
      const inp = el("input", { type: "number", min: "1", max: "100", value: String(d.canary < 100 ? 100 : d.canary), id: "canary-" + g.group, required: "" });
      const msg = el("p", { class: "error", role: "alert" });
      const form = el("form", {}, el("label", { for: inp.id }, "Canary percent", inp), el("button", { type: "submit", text: "Set canary" }), msg);
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        msg.textContent = "";
        try {
          await api("rollouts/" + encodeURIComponent(g.group) + "/canary", { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ canary: Number(inp.value) }) });
        } catch (e) { msg.textContent = e.message; }
      });
      card.append(form);
    }
    return card;
  }
  function renderGroup(g) {
    state.groups.set(g.group, g);
    const card = groupCard(g);
    const old = document.querySelector(`#groups [data-group="${CSS.escape(g.group)}"]`);
    if (old) old.replaceWith(card); else $("groups").append(card);
  }
  // The fleet's rollout event list follows the stream, reloaded at most every 2 s.
  let eventsTimer = null;
  function staleRolloutEvents() {
    if (eventsTimer) return;
    eventsTimer = setTimeout(async () => {
      eventsTimer = null;
      try { $("rollout-events").replaceChildren(...(await api("rollouts")).events.map(evItem)); } catch (e) { /* the next event retries */ }
    }, 2000);
  }
  async function loadRollouts() {
    const r = await api("rollouts");
    $("rollouts-off").hidden = r.enabled;
    $("groups").replaceChildren();
    r.groups.forEach(renderGroup);
    $("rollout-events").replaceChildren(...r.events.map(evItem));
  }

  // ---- training
  function chart(id, series, scales) {
    const box = $(id);
    const opts = { width: Math.max(280, box.clientWidth || 400), height: 220, series: [{ label: "round" }].concat(series),
      scales: Object.assign({ x: { time: false } }, scales || {}), axes: [{ label: "round" }, {}], legend: { live: false } };
    const u = new uPlot(opts, [[]].concat(series.map(() => [])), box);
    u._box = box;
    return u;
  }
  function resize(u) { if (u._box.clientWidth) u.setSize({ width: u._box.clientWidth, height: 220 }); }
  function initCharts() {
    if (typeof uPlot === "undefined" || state.charts.quality) return;
    state.charts.quality = chart("c-quality", [
      { label: "loss", stroke: "#0a4fa8", width: 2 }, { label: "accuracy", stroke: "#0b6b2f", width: 2 }, { label: "AUROC", stroke: "#8a3ffc", width: 2 }]);
    state.charts.privacy = chart("c-privacy", [{ label: "epsilon spent", stroke: "#a0111f", width: 2 }, { label: "target", stroke: "#4a5560", dash: [6, 4] }]);
    state.charts.part = chart("c-part", [{ label: "participants", stroke: "#0b6b2f" }, { label: "dropouts", stroke: "#a0111f" }, { label: "stragglers", stroke: "#7a4b00" }]);
    window.addEventListener("resize", () => Object.values(state.charts).forEach(resize));
  }
  function redrawCharts() {
    initCharts();
    if (!state.charts.quality) return;
    const R = state.rounds, x = R.map((r) => r.round), v = (k) => R.map((r) => r[k] === undefined ? (k === "loss" ? r.device_loss ?? null : null) : r[k]);
    state.charts.quality.setData([x, v("loss"), v("accuracy"), v("auroc")]);
    const target = state.fed && state.fed.target_epsilon ? R.map(() => state.fed.target_epsilon) : R.map(() => null);
    state.charts.privacy.setData([x, v("epsilon"), target]);
    state.charts.part.setData([x, v("participants"), v("dropouts"), v("stragglers")]);
    const last = R[R.length - 1];
    if (last) {
      $("c-quality-last").textContent = `Round ${last.round}: loss ${num(last.loss ?? last.device_loss, 4)}, accuracy ${num(last.accuracy, 3)}, AUROC ${num(last.auroc, 3)}`;
      $("c-privacy-last").textContent = last.epsilon !== undefined ? `Round ${last.round}: epsilon ${num(last.epsilon, 3)} of ${num(state.fed.target_epsilon, 2)}` : "No privacy budget spent (mode " + state.fed.mode + ")";
      $("c-part-last").textContent = `Round ${last.round}: ${last.participants} of ${last.sampled} sampled took part, ${last.stragglers} stragglers`;
    }
  }
  function roundRow(r) {
    return el("tr", { "data-round": String(r.round) }, el("th", { scope: "row", text: String(r.round) }), el("td", {}, badge(r.status === "completed" ? "complete" : "failing", r.status)),
      el("td", { text: `${r.participants}/${r.sampled}` }), el("td", { text: String(r.dropouts) }), el("td", { text: String(r.stragglers) }),
      el("td", { text: fmtBytes(r.bytes_in + r.bytes_out) }), el("td", { text: num(r.loss ?? r.device_loss, 4) }), el("td", { text: num(r.accuracy, 3) }),
      el("td", { text: num(r.auroc, 3) }), el("td", { text: num(r.epsilon, 3) }));
  }
  function renderRounds() {
    $("round-rows").replaceChildren(...state.rounds.slice(-20).reverse().map(roundRow));
  }
  function renderFed() {
    const f = state.fed;
    $("fed-name").textContent = f.name;
    const params = Object.entries(f.params || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const facts = [["Federation", f.name], ["Strategy", f.strategy + (params ? ` (${params})` : "")], ["Privacy mode", f.mode],
      ["Epsilon", f.privacy && f.privacy.epsilon ? `${num(f.privacy.epsilon, 3)} spent of ${num(f.target_epsilon, 2)} (delta ${f.delta})` : f.target_epsilon ? `target ${f.target_epsilon}` : "–"],
      ["Rounds", `${f.total_rounds}${f.planned_rounds ? " of " + f.planned_rounds : ""}`]];
    $("fed-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }
  async function loadTraining() {
    const t = await api("training");
    state.fed = t.federations[0];
    state.rounds = state.fed.rounds;
    renderFed(); renderRounds(); redrawCharts();
  }
  function addRound(r) {
    const t0 = performance.now();
    state.rounds.push(r);
    if (state.rounds.length > 10000) state.rounds.shift(); // as many as the hub keeps
    state.fed.total_rounds++;
    if (r.epsilon !== undefined) state.fed.privacy = Object.assign({}, state.fed.privacy, { epsilon: r.epsilon });
    renderFed(); renderRounds(); redrawCharts();
    state.timing.updates++; state.timing.updateMS += performance.now() - t0;
  }

  // ---- live stream: fetch, so that the token goes in a header
  async function follow() {
    for (;;) {
      try {
        const res = await fetch("api/v1/events", { headers: headers({ Accept: "text/event-stream" }), cache: "no-store" });
        if (res.status === 401) { showSignIn("Your token is no longer accepted."); return; }
        if (!res.ok) throw new Error(res.statusText);
        live(true);
        const rd = res.body.getReader(), dec = new TextDecoder();
        let buf = "", first = true;
        for (;;) {
          const { value, done } = await rd.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            let ev = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) ev = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (ev === "hello" && !first) continue;
            if (ev === "hello") { first = false; await reload(); continue; }
            if (data) dispatch(ev, JSON.parse(data));
          }
        }
      } catch (e) { /* reconnect below */ }
      live(false);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  function dispatch(ev, d) {
    if (ev === "device") updateDevice(d);
    else if (ev === "round") { addRound(d); staleFleet(); }
    else if (ev === "rollout") { renderGroup(d); staleRolloutEvents(); }
  }
  function live(on) { const l = $("live"); l.textContent = on ? "live" : "reconnecting…"; l.classList.toggle("on", on); }

  async function reload() {
    // After (re)connecting the stream: what happened while away.
    await Promise.all([loadFleet(), loadRollouts(), loadTraining()]);
    performance.mark("fennec-loaded");
  }

  async function start() {
    try {
      state.session = await api("session");
    } catch (e) { return; }
    $("signin").hidden = true;
    if (state.session.sign_in) {
      $("who").textContent = `${state.session.operator} (${state.session.role})`;
      $("signout").hidden = false;
    }
    route();
    follow();
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.addEventListener("hashchange", route);
    for (const id of ["f-q", "f-group", "f-status"]) $(id).addEventListener("input", refilter);
    $("fleet-filter").addEventListener("submit", (e) => e.preventDefault());
    $("fleet-rows").addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-device]");
      if (tr && e.target.tagName !== "A") location.hash = "#fleet/" + encodeURIComponent(tr.dataset.device);
    });
    $("device-close").addEventListener("click", () => { location.hash = "#fleet"; });
    $("signin-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.token = $("token").value.trim();
      $("token").value = "";
      sessionStorage.setItem("fennec-token", state.token);
      start();
    });
    $("signout").addEventListener("click", () => { sessionStorage.removeItem("fennec-token"); location.reload(); });
    setInterval(() => { for (const td of document.querySelectorAll("td[data-t]")) td.textContent = fmtTime(td.dataset.t); }, 10000);
    start();
  });
})();
