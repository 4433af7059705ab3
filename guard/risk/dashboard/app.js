// siyu-guard risk dashboard: plain JavaScript, no build step.
// The key is entered once and kept in localStorage; every request sends it as a Bearer token.
// Live alerts come from /v1/alerts/stream read with fetch streaming (EventSource cannot send headers),
// resuming with Last-Event-ID after a disconnect so no alert is lost or shown twice.
"use strict";

const KEY_STORAGE = "siyu-guard-key";
const MAX_ROWS = 200;
const LEVELS = {
  redline: "红线 redline",
  block: "拦截 block",
  warning: "预警 warning",
  system: "系统 system",
};
const ACTIONS = {
  "add_friend.active": "主动加好友 add (active)",
  "add_friend.passive": "通过好友 add (passive)",
  broadcast: "群发 broadcast",
  "broadcast.recipients": "群发人数 recipients",
  moment: "朋友圈 moment",
  message: "消息 message",
  welcome: "欢迎语 welcome",
};
const WINDOWS = { day: "日 day", hour: "时 hour", minute: "分 minute" };

const state = { key: null, role: null, lastId: null, seen: new Set(), abort: null, overviewTimer: null, refreshSoon: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function bilingual(zh, en) {
  return el("span", {}, zh + " ", el("span", { class: "en" }, en));
}

class AuthError extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.key }, options.headers || {});
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401 || resp.status === 403) {
    let message = "";
    try { message = (await resp.json()).message; } catch (e) { message = resp.statusText; }
    throw new AuthError(message);
  }
  if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
  return resp.json();
}

function fmtTime(seconds) {
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// ---- alerts ----------------------------------------------------------------------------------------

function alertRow(alert, fresh) {
  const figures = [];
  if (alert.limit !== null && alert.limit !== undefined) figures.push(`${alert.used}/${alert.limit}`);
  if (alert.attempts !== null && alert.attempts !== undefined) figures.push(`尝试 attempts ${alert.attempts}`);
  const message = el("td", {},
    el("div", {}, alert.message_zh),
    el("div", { class: "en" }, alert.message_en),
    alert.excerpt ? el("div", {}, el("span", { class: "excerpt" }, alert.excerpt)) : null);
  return el("tr", { class: `alert ${alert.level}${fresh ? " fresh" : ""}`, "data-id": alert.id, "data-level": alert.level },
    el("td", {}, fmtTime(alert.at)),
    el("td", {}, el("span", { class: `lvl ${alert.level}` }, LEVELS[alert.level] || alert.level)),
    el("td", {}, alert.account || "-"),
    el("td", {}, alert.staff || "-"),
    el("td", {}, alert.rule),
    el("td", {}, figures.join(" · ") || "-"),
    message);
}

function addAlert(alert, fresh) {
  if (state.seen.has(alert.id)) return;
  state.seen.add(alert.id);
  const body = $("alerts");
  body.prepend(alertRow(alert, fresh));
  while (body.children.length > MAX_ROWS) body.lastElementChild.remove();
  $("no-alerts").hidden = true;
  $("alert-count").textContent = `(${state.seen.size})`;
  if (fresh) {
    clearTimeout(state.refreshSoon);
    state.refreshSoon = setTimeout(loadOverview, 500);
  }
}

async function loadHistory() {
  const data = await api("/v1/alerts?limit=100");
  for (const alert of data.alerts) addAlert(alert, false);
  state.lastId = data.alerts.length ? data.alerts[data.alerts.length - 1].id : data.last_id;
}

function setConnected(on) {
  const conn = $("conn");
  conn.className = "conn " + (on ? "on" : "off");
  conn.replaceChildren(on ? "● 实时 " : "● 重连中 ", el("span", { class: "en" }, on ? "live" : "reconnecting"));
}

async function follow() {
  // One stream at a time; reconnects after 2 s from the last id seen.
  while (state.key) {
    const controller = new AbortController();
    state.abort = controller;
    try {
      const headers = { Authorization: "Bearer " + state.key, Accept: "text/event-stream" };
      if (state.lastId) headers["Last-Event-ID"] = state.lastId;
      const resp = await fetch("/v1/alerts/stream", { headers, signal: controller.signal, cache: "no-store" });
      if (resp.status === 401 || resp.status === 403) throw new AuthError("key refused");
      if (!resp.ok || !resp.body) throw new Error("stream: HTTP " + resp.status);
      setConnected(true);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          handleFrame(frame);
        }
      }
    } catch (err) {
      if (err instanceof AuthError) { showLogin("密钥无效 / key refused"); return; }
      if (controller.signal.aborted) return;
    }
    setConnected(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function handleFrame(frame) {
  let id = null;
  let event = "message";
  let data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("id: ")) id = line.slice(4);
    else if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  if (event === "gap") {
    // The page was away longer than the feed keeps alerts: say so instead of pretending nothing happened.
    const gap = JSON.parse(data);
    $("alerts").prepend(el("tr", { class: "gap" }, el("td", { colspan: "7" },
      `部分告警已超出保留上限，未能显示（至 ${gap.lost_through}）。`,
      el("span", { class: "en" }, ` Some alerts were dropped by the feed's cap (through ${gap.lost_through}).`))));
    return;
  }
  const alert = JSON.parse(data);
  if (id) state.lastId = id;
  addAlert(alert, true);
}

// ---- overview ----------------------------------------------------------------------------------------

function usageBar(item) {
  const ratio = item.limit > 0 ? Math.min(1, item.used / item.limit) : 1;
  const cls = ratio >= 1 ? "full" : ratio >= 0.8 ? "near" : "";
  const name = (ACTIONS[item.action] || item.action) + " / " + (WINDOWS[item.window] || item.window);
  return el("div", { class: "bar", "data-rule": item.rule, "data-window": item.window },
    el("div", { class: "label" },
      el("span", {}, name + (item.mode === "shadow" ? " (shadow)" : "")),
      el("span", {}, `${item.used} / ${item.limit}`)),
    el("div", { class: "track" }, el("div", { class: `fill ${cls}`, style: `width:${(ratio * 100).toFixed(1)}%` })));
}

function accountCard(acct) {
  const head = el("div", { class: "head" },
    el("div", {},
      el("span", { class: "name" }, acct.account),
      acct.tier ? el("span", { class: "tag", title: "tier 等级" }, "等级 tier: " + acct.tier) : null,
      acct.matrix ? el("span", { class: "tag", title: "matrix 矩阵" }, "矩阵 matrix: " + acct.matrix) : null,
      acct.staff ? el("span", { class: "tag" }, "员工 staff: " + acct.staff) : null,
      acct.frozen ? el("span", { class: "tag frozen" }, "已冻结 frozen") : null));
  if (state.role === "admin") {
    const frozen = acct.frozen;
    head.append(el("button", {
      type: "button",
      class: frozen ? "unfreeze" : "freeze",
      "data-account": acct.account,
      onclick: () => toggleFreeze(acct.account, frozen),
    }, frozen ? "解冻 Unfreeze" : "冻结 Freeze"));
  }
  const card = el("div", { class: "account" + (acct.frozen ? " frozen" : ""), "data-account": acct.account }, head);
  if (acct.error) card.append(el("div", { class: "error" }, acct.error));
  for (const [action, rules] of Object.entries(acct.usage || {})) {
    for (const rule of rules) card.append(usageBar(Object.assign({ action }, rule)));
  }
  return card;
}

async function toggleFreeze(account, frozen) {
  const verb = frozen ? "unfreeze" : "freeze";
  const prompt = frozen ? `解冻账号 ${account}？ Unfreeze ${account}?` : `冻结账号 ${account}？ Freeze ${account}?`;
  if (!window.confirm(prompt)) return;
  try {
    await api(`/v1/accounts/${encodeURIComponent(account)}/${verb}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ reason: "dashboard" }),
    });
  } catch (err) {
    window.alert(String(err.message || err));
  }
  loadOverview();
}

function topList(id, rows) {
  const list = $(id);
  list.replaceChildren(...rows.map((r) => el("li", {}, `${r.id} — 拦截 refused ${r.refused}`)));
  if (!rows.length) list.replaceChildren(el("li", { class: "muted" }, "无 none"));
}

async function loadOverview() {
  let data;
  try {
    data = await api("/v1/risk/overview");
  } catch (err) {
    if (err instanceof AuthError) showLogin(err.message);
    return;
  }
  state.role = data.role;
  $("who").textContent = `${data.key} (${data.role})`;
  $("day").textContent = `${data.day} ${data.timezone}`;
  topList("top-staff", data.top_staff);
  topList("top-accounts", data.top_accounts);
  const t = data.totals;
  $("totals").textContent =
    `放行 allowed ${t.allowed} · 拦截 refused ${t.refused} · 敏感词 sensitive hits ${t.sensitive_hits} · ` +
    `触达上限 limits reached ${t.limits_reached} · 投诉 complaints ${t.complaints}`;
  $("rules-version").textContent = data.rules.version || "-";
  $("rules-loaded").textContent = data.rules.loaded_at ? fmtTime(Number(data.rules.loaded_at)) : "-";
  const ruleError = $("rules-error");
  ruleError.textContent = data.rules.last_error || "无 none";
  ruleError.className = data.rules.last_error ? "bad" : "";
  $("alerts-backend").textContent = data.alerts_backend;
  const o = data.observer;
  const observer = $("observer");
  observer.textContent = `待写入 waiting ${o.waiting_for_redis} · 丢弃 dropped ${o.dropped}`;
  observer.className = o.waiting_for_redis || o.dropped ? "bad" : "";
  $("webhooks").replaceChildren(
    ...(data.webhooks.length
      ? data.webhooks.map((w) => el("div", { class: w.last_error ? "error" : "" },
          `${w.name}: 已推送 sent ${w.sent} · 失败 failures ${w.failures}` + (w.last_error ? ` · ${w.last_error}` : "")))
      : [el("span", { class: "muted" }, "未配置 none configured")]));
  $("accounts").replaceChildren(...data.accounts.map(accountCard));
  $("no-accounts").hidden = data.accounts.length > 0;
}

// ---- login -------------------------------------------------------------------------------------------

function showLogin(message) {
  if (state.abort) state.abort.abort();
  clearInterval(state.overviewTimer);
  state.key = null;
  localStorage.removeItem(KEY_STORAGE);
  $("main").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setConnected(false);
}

async function start(key, probe) {
  state.key = key;
  state.seen.clear();
  $("alerts").replaceChildren();
  try {
    await loadHistory();
  } catch (err) {
    // A first probe without a key (a guard with no keys configured lets the local operator in).
    showLogin(probe ? "" : err instanceof AuthError ? err.message : String(err));
    return;
  }
  if (key) localStorage.setItem(KEY_STORAGE, key);
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  await loadOverview();
  state.overviewTimer = setInterval(loadOverview, 10000);
  follow();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key").value.trim();
  if (key) start(key, false);
});
$("logout").addEventListener("click", () => showLogin(""));

const saved = localStorage.getItem(KEY_STORAGE);
if (saved) start(saved, false); else start("", true);
