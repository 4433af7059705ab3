// siyu-guard risk dashboard: plain JavaScript, no build step, no external files (charts are inline SVG).
// The key is entered once and kept in localStorage; every request sends it as a Bearer token. A guard with
// no keys configured (loopback, zero configuration) lets the page in without one: the key is then "".
// Live alerts come from /v1/alerts/stream read with fetch streaming (EventSource cannot send headers),
// resuming with Last-Event-ID after a disconnect so no alert is lost or shown twice.
// Times are shown in the guard's timezone (the overview's `timezone`), whatever the browser's.
"use strict";

const KEY_STORAGE = "siyu-guard-key";
const MAX_ROWS = 200;
const PAGE = 60;
const NEAR = 0.8;
const LEVELS = {
  redline: "红线 red line",
  block: "拦截 blocked",
  warning: "预警 warning",
  system: "系统 system",
};
const ACTIONS = {
  "add_friend.active": "主动加好友 add friends",
  "add_friend.passive": "通过好友 accept friends",
  broadcast: "群发 broadcasts",
  "broadcast.recipients": "群发人数 recipients",
  moment: "朋友圈 moments",
  message: "消息 messages",
  welcome: "欢迎语 welcomes",
};
const WINDOWS = { day: "每日 per day", hour: "每小时 per hour", minute: "每分钟 per minute" };
const REASONS = {
  finance: "金融理财 finance",
  contact: "联系方式 contact details",
  diversion: "引流 diversion",
  fraud: "诈骗 fraud",
  gambling: "赌博 gambling",
  medical: "医疗 medical",
  porn: "色情 porn",
  adlaw: "广告法 ad law",
  quota: "超出上限 over a limit",
  frozen: "账号已冻结 account frozen",
  attachments: "附件 attachment",
  request: "请求无效 bad request",
  other: "其他 other",
};
const PALETTE = ["#00897b", "#ef6c00", "#3949ab", "#8d6e63", "#c0ca33", "#00acc1", "#d81b60", "#7b1fa2", "#546e7a"];

const state = {
  key: null, role: null, tz: undefined, gen: 0, lastId: null, seen: new Set(), abort: null,
  overviewTimer: null, refreshSoon: null, accounts: [], showing: PAGE, data: null,
};
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

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

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function bilingual(zh, en) {
  return el("span", {}, zh + " ", el("span", { class: "en" }, en));
}

class AuthError extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.key) headers.Authorization = "Bearer " + state.key;
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401 || resp.status === 403) {
    let message = "";
    try { message = (await resp.json()).message; } catch (e) { message = resp.statusText; }
    throw new AuthError(message);
  }
  if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
  return resp.json();
}

// ---- time, in the guard's timezone ------------------------------------------------------------------

const formatters = new Map();

function fmtTime(seconds, withDate = true) {
  const key = `${state.tz}|${withDate}`;
  if (!formatters.has(key)) {
    let options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    if (withDate) options = Object.assign({ month: "2-digit", day: "2-digit" }, options);
    try {
      formatters.set(key, new Intl.DateTimeFormat("en-CA", Object.assign({ timeZone: state.tz }, options)));
    } catch (e) {  // an unknown zone name: the browser's own, said in the header
      formatters.set(key, new Intl.DateTimeFormat("en-CA", options));
    }
  }
  const parts = {};
  for (const p of formatters.get(key).formatToParts(new Date(seconds * 1000))) parts[p.type] = p.value;
  const clock = `${parts.hour}:${parts.minute}:${parts.second}`;
  return withDate ? `${parts.month}-${parts.day} ${clock}` : clock;
}

// ---- alerts ----------------------------------------------------------------------------------------

function alertRow(alert, fresh) {
  const figures = [];
  if (alert.limit !== null && alert.limit !== undefined) figures.push(`已用 used ${alert.used} / 上限 limit ${alert.limit}`);
  if (alert.attempts !== null && alert.attempts !== undefined) figures.push(`尝试 tries ${alert.attempts}`);
  const message = el("td", {},
    el("div", {}, alert.message_zh),
    el("div", { class: "en" }, alert.message_en),
    el("div", { class: "meta" }, alert.rule + (figures.length ? " · " + figures.join(" · ") : "")),
    alert.excerpt ? el("div", {}, el("span", { class: "excerpt" }, alert.excerpt)) : null);
  return el("tr", { class: `alert ${alert.level}${fresh ? " fresh" : ""}`, "data-id": alert.id, "data-level": alert.level },
    el("td", { class: "time", title: state.tz || "" }, fmtTime(alert.at)),
    el("td", {}, el("span", { class: `lvl ${alert.level}` }, LEVELS[alert.level] || alert.level)),
    el("td", {}, el("div", { class: "acct" }, alert.account || "-"), alert.staff ? el("div", { class: "muted" }, alert.staff) : null),
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

function setConnected(on, never) {
  const conn = $("conn");
  conn.className = "conn " + (on ? "on" : "off");
  conn.replaceChildren(on ? "● 实时 " : never ? "● 未连接 " : "● 重连中 ",
    el("span", { class: "en" }, on ? "live" : never ? "offline" : "reconnecting"));
}

async function follow(gen) {
  // One stream at a time (a new login or logout bumps `gen`); reconnects after 2 s from the last id seen.
  while (gen === state.gen) {
    const controller = new AbortController();
    state.abort = controller;
    try {
      const headers = { Accept: "text/event-stream" };
      if (state.key) headers.Authorization = "Bearer " + state.key;
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
      if (controller.signal.aborted || gen !== state.gen) return;
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
    $("alerts").prepend(el("tr", { class: "gap" }, el("td", { colspan: "4" },
      `部分告警已超出保留上限，未能显示（至 ${gap.lost_through}）。`,
      el("span", { class: "en" }, ` Some alerts were dropped by the feed's cap (through ${gap.lost_through}).`))));
    return;
  }
  const alert = JSON.parse(data);
  if (id) state.lastId = id;
  addAlert(alert, true);
}

// ---- accounts ----------------------------------------------------------------------------------------

function peakOf(acct) {
  if (typeof acct.peak === "number") return acct.peak;
  let peak = 0;
  for (const rules of Object.values(acct.usage || {})) {
    for (const r of rules) if (r.mode === "enforce" && r.limit > 0) peak = Math.max(peak, r.used / r.limit);
  }
  return peak;
}

function usageBar(item) {
  const ratio = item.limit > 0 ? Math.min(1, item.used / item.limit) : 1;
  const cls = ratio >= 1 ? "full" : ratio >= NEAR ? "near" : "";
  const name = (ACTIONS[item.action] || item.action) + " · " + (WINDOWS[item.window] || item.window);
  return el("div", { class: "bar", "data-rule": item.rule, "data-window": item.window },
    el("div", { class: "label" },
      el("span", {}, name + (item.mode === "shadow" ? "（试运行 shadow）" : "")),
      el("span", { class: "fig" }, `${item.used} / ${item.limit}` + (item.attempts ? ` · 尝试 tries ${item.attempts}` : ""))),
    el("div", { class: "track" }, el("div", { class: `fill ${cls}`, style: `width:${(ratio * 100).toFixed(1)}%` })));
}

function accountCard(acct) {
  const peak = peakOf(acct);
  const level = peak >= 1 ? "full" : peak >= NEAR ? "near" : "";
  const tags = el("div", { class: "tags" },
    acct.staff ? el("span", { class: "tag" }, "员工 staff " + acct.staff) : null,
    acct.matrix ? el("span", { class: "tag" }, "矩阵 matrix " + acct.matrix) : null,
    acct.tier ? el("span", { class: "tag" }, "等级 tier " + acct.tier) : null,
    acct.refused ? el("span", { class: "tag refused" }, "拦截 refused " + acct.refused) : null,
    acct.frozen ? el("span", { class: "tag frozen" }, "已冻结 frozen") : null);
  const head = el("div", { class: "head" },
    el("div", { class: "who" }, el("span", { class: "name" }, acct.account), tags),
    el("span", { class: `peak ${level}`, title: "最接近上限的规则 the rule closest to its limit" },
      peak > 0 ? `${Math.round(peak * 100)}%` : ""));
  if (state.role === "admin") {
    const frozen = acct.frozen;
    head.append(el("button", {
      type: "button",
      class: frozen ? "unfreeze" : "freeze",
      "data-account": acct.account,
      onclick: () => toggleFreeze(acct.account, frozen),
    }, frozen ? "解冻 Unfreeze" : "冻结 Freeze"));
  }
  const card = el("div", { class: `account ${level}` + (acct.frozen ? " frozen" : ""), "data-account": acct.account }, head);
  if (acct.error) card.append(el("div", { class: "error" }, acct.error));
  const bars = [];
  for (const [action, rules] of Object.entries(acct.usage || {})) {
    for (const rule of rules) if (rule.used || rule.attempts) bars.push(Object.assign({ action }, rule));
  }
  bars.sort((a, b) => (b.limit > 0 ? b.used / b.limit : 0) - (a.limit > 0 ? a.used / a.limit : 0));
  for (const bar of bars) card.append(usageBar(bar));
  if (!bars.length && !acct.error) {
    card.classList.add("idle-card");
    card.append(el("div", { class: "idle muted" }, "今日未使用 ", el("span", { class: "en" }, "nothing used today")));
  }
  return card;
}

function matches(acct, query, filter) {
  if (filter === "near" && peakOf(acct) < NEAR) return false;
  if (filter === "frozen" && !acct.frozen) return false;
  if (filter === "active" && !Object.keys(acct.usage || {}).length && !acct.refused) return false;
  if (!query) return true;
  return [acct.account, acct.staff, acct.matrix].some((v) => v && v.toLowerCase().includes(query));
}

function renderAccounts() {
  const query = $("search").value.trim().toLowerCase();
  const filter = $("filter").value;
  const list = state.accounts.filter((a) => matches(a, query, filter));
  const shown = list.slice(0, state.showing);
  $("accounts").replaceChildren(...shown.map(accountCard));
  $("no-accounts").hidden = list.length > 0;
  $("more").hidden = list.length <= shown.length;
  $("shown").textContent = `显示 ${shown.length} / ${list.length}（共 ${state.accounts.length}） ` +
    `showing ${shown.length} of ${list.length} (${state.accounts.length} in all)`;
}

function sortAccounts(accounts) {
  return accounts.slice().sort((a, b) =>
    peakOf(b) - peakOf(a) || (b.frozen ? 1 : 0) - (a.frozen ? 1 : 0) || (b.refused || 0) - (a.refused || 0) ||
    (a.account < b.account ? -1 : a.account > b.account ? 1 : 0));
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

// ---- charts (inline SVG) -----------------------------------------------------------------------------

function barChart(container, series, colours, height, currentHour) {
  // series: [[name, [24 numbers]]], stacked per hour.
  const W = 720, H = height, left = 30, bottom = 18, top = 8;
  const totals = Array.from({ length: 24 }, (_, h) => series.reduce((s, [, v]) => s + (v[h] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = max <= 4 ? 1 : Math.ceil(max / 4);
  const yMax = step * Math.ceil(max / step);
  const y = (v) => top + (H - top - bottom) * (1 - v / yMax);
  const bw = (W - left) / 24;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img" });
  for (let v = 0; v <= yMax; v += step) {
    root.append(svg("line", { x1: left, x2: W, y1: y(v), y2: y(v), class: "grid-line" }));
    root.append(svg("text", { x: left - 4, y: y(v) + 3, class: "axis", "text-anchor": "end" }, v));
  }
  if (currentHour !== null) {
    root.append(svg("rect", { x: left + currentHour * bw, y: top, width: bw, height: H - top - bottom, class: "now" }));
  }
  for (let h = 0; h < 24; h++) {
    let base = 0;
    series.forEach(([name, values], i) => {
      const v = values[h] || 0;
      if (!v) return;
      root.append(svg("rect", {
        x: left + h * bw + 2, y: y(base + v), width: bw - 4, height: y(base) - y(base + v),
        fill: colours[i % colours.length], "data-hour": h, "data-series": name,
      }, svg("title", {}, `${String(h).padStart(2, "0")}:00 ${name}: ${v}`)));
      base += v;
    });
    if (h % 3 === 0) root.append(svg("text", { x: left + h * bw + bw / 2, y: H - 4, class: "axis", "text-anchor": "middle" }, String(h).padStart(2, "0")));
  }
  container.replaceChildren(root);
}

function hourNow() {
  try {
    return Number(new Intl.DateTimeFormat("en-GB", { hour: "2-digit", hourCycle: "h23", timeZone: state.tz }).format(new Date()));
  } catch (e) {
    return new Date().getHours();
  }
}

function renderCharts(hourly) {
  const refused = Object.entries(hourly.refused || {});
  const now = hourNow();
  const box = $("chart-refused");
  barChart(box, refused, PALETTE, 170, now);
  const legend = el("div", { class: "chart-legend" }, ...refused.map(([name, values], i) =>
    el("span", { "data-category": name }, el("i", { style: `background:${PALETTE[i % PALETTE.length]}` }),
      `${REASONS[name] || name} ${values.reduce((a, b) => a + b, 0)}`)));
  if (!refused.length) legend.append(el("span", { class: "muted" }, "今日尚无拦截 No refusals today"));
  box.append(legend);
  const red = hourly.redline || [];
  const redBox = $("chart-redline");
  barChart(redBox, [["redline", red]], ["#d32f2f"], 110, now);
  const total = red.reduce((a, b) => a + b, 0);
  redBox.append(el("div", { class: "chart-legend" }, el("span", {}, el("i", { style: "background:#d32f2f" }),
    `今日红线告警 red-line alerts today: ${total}`)));
}

// ---- overview ----------------------------------------------------------------------------------------

function topList(id, rows) {
  const list = $(id);
  list.replaceChildren(...rows.map((r) => el("li", {}, `${r.id} — 拦截 refused ${r.refused}`)));
  if (!rows.length) list.replaceChildren(el("li", { class: "muted" }, "无 none"));
}

function tile(zh, en, value, cls, onclick) {
  return el("button", { type: "button", class: "tile " + (cls || ""), onclick: onclick || (() => {}) },
    el("div", { class: "value" }, String(value)), el("div", { class: "label" }, zh + " ", el("span", { class: "en" }, en)));
}

function setFilter(value) {
  $("filter").value = value;
  state.showing = PAGE;
  renderAccounts();
}

function renderTiles(data) {
  const t = data.totals;
  const near = state.accounts.filter((a) => peakOf(a) >= NEAR).length;
  const frozen = state.accounts.filter((a) => a.frozen).length;
  $("tiles").replaceChildren(
    tile("放行", "allowed", t.allowed, "ok"),
    tile("拦截", "refused", t.refused, t.refused ? "block" : ""),
    tile("敏感词命中", "prohibited-word hits", t.sensitive_hits, ""),
    tile("触达上限", "limits reached", t.limits_reached, t.limits_reached ? "warn" : ""),
    tile("投诉", "complaints", t.complaints, t.complaints ? "red" : ""),
    tile("接近上限的账号", "accounts near a limit", near, near ? "warn" : "", () => setFilter("near")),
    tile("冻结的账号", "frozen accounts", frozen, frozen ? "red" : "", () => setFilter("frozen")));
}

function renderStaff(data) {
  const rows = data.staff || [];
  $("staff").replaceChildren(...rows.slice(0, 200).map((r) => el("tr", { "data-staff": r.id, class: r.violations ? "bad" : "good" },
    el("td", {}, r.id),
    el("td", { class: "muted" }, r.accounts.join(", ") || "-"),
    el("td", { class: "num" }, r.allowed),
    el("td", { class: "num" }, r.refused),
    el("td", { class: "num" }, r.complaints),
    el("td", {}, r.violations ? `违规 ${r.violations} violations` : "合规 ✓ clean"))));
  if (!rows.length) $("staff").replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "今日尚无记录 Nothing recorded today")));
  const clean = data.clean_staff || [];
  $("clean-staff").replaceChildren(
    el("strong", {}, `无违规员工（合规奖金） ${clean.length} `),
    el("span", { class: "en" }, `Staff with no violation today (compliance bonus): `),
    clean.length ? clean.join("、") : "-");
}

function observerText(o) {
  const parts = [];
  if (!o.waiting_for_redis && !o.dropped && !o.alerts_dropped) return ["正常，全部已保存 ", el("span", { class: "en" }, "OK, everything saved")];
  if (o.waiting_for_redis) parts.push(`${o.waiting_for_redis} 条等待写入（Redis 暂不可用，先存在本机）`, el("span", { class: "en" }, ` ${o.waiting_for_redis} waiting to be saved (Redis unreachable; kept in this process). `));
  if (o.dropped || o.alerts_dropped) parts.push(`已丢失 ${o.dropped + o.alerts_dropped} 条`, el("span", { class: "en" }, ` ${o.dropped + o.alerts_dropped} lost (queue full)`));
  return parts;
}

async function fetchOverview() {
  const data = await api("/v1/risk/overview");
  state.data = data;
  state.role = data.role;
  if (state.tz !== data.timezone) { state.tz = data.timezone; formatters.clear(); }
  $("who").textContent = state.key ? `${data.key} (${data.role})` : "本机免密钥 local, no keys configured";
  $("day").textContent = `${data.day} (${data.timezone})`;
  $("tz").textContent = `(${data.timezone})`;
  state.accounts = sortAccounts(data.accounts);
  renderTiles(data);
  renderAccounts();
  renderCharts(data.hourly || {});
  renderStaff(data);
  topList("top-staff", data.top_staff);
  topList("top-accounts", data.top_accounts);
  $("rules-version").textContent = data.rules.version || "-";
  $("rules-loaded").textContent = data.rules.loaded_at ? fmtTime(Number(data.rules.loaded_at)) : "-";
  const ruleError = $("rules-error");
  ruleError.textContent = data.rules.last_error || "无 none";
  ruleError.className = data.rules.last_error ? "bad" : "";
  const sync = data.rules.intercept;
  const syncEl = $("rules-intercept");
  syncEl.textContent = sync
    ? `${fmtTime(Number(sync.at))} · ${sync.ok ? "成功 ok" : "有错误 errors " + sync.errors} · ` +
      `新建 created ${sync.created} · 更新 updated ${sync.updated} · 删除 deleted ${sync.deleted} · ` +
      `未变 unchanged ${sync.unchanged}`
    : "未同步 never synced (guard intercept sync)";
  syncEl.className = sync && !sync.ok ? "bad" : "";
  $("alerts-backend").replaceChildren(data.alerts_backend === "redis"
    ? bilingual("Redis（所有进程共享）", "Redis, shared by every guard process")
    : bilingual("本进程内存（重启后清空）", "this process's memory (gone on restart)"));
  const o = data.observer;
  const observer = $("observer");
  observer.replaceChildren(...observerText(o));
  observer.className = o.waiting_for_redis || o.dropped || o.alerts_dropped ? "bad" : "";
  $("webhooks").replaceChildren(
    ...(data.webhooks.length
      ? data.webhooks.map((w) => el("div", { class: w.last_error ? "error" : "" },
          `${w.name}: 已推送 sent ${w.sent} · 失败 failed ${w.failures}` + (w.last_error ? ` · ${w.last_error}` : "")))
      : [el("span", { class: "muted" }, "未配置 none configured")]));
  return data;
}

async function loadOverview() {
  try {
    await fetchOverview();
  } catch (err) {
    if (err instanceof AuthError) showLogin(err.message);
  }
}

// ---- login -------------------------------------------------------------------------------------------

function showLogin(message) {
  state.gen += 1;
  if (state.abort) state.abort.abort();
  clearInterval(state.overviewTimer);
  state.key = null;
  localStorage.removeItem(KEY_STORAGE);
  $("main").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setConnected(false, true);
}

async function start(key, probe) {
  state.gen += 1;
  const gen = state.gen;
  if (state.abort) state.abort.abort();
  clearInterval(state.overviewTimer);
  state.key = key;
  state.seen.clear();
  state.lastId = null;
  $("alerts").replaceChildren();
  try {
    await fetchOverview();  // first: it gives the timezone the alert times are shown in
    await loadHistory();
  } catch (err) {
    // A first probe without a key (a guard with no keys configured lets the local operator in).
    showLogin(probe ? "" : err instanceof AuthError ? err.message : String(err));
    return;
  }
  if (gen !== state.gen) return;
  if (key) localStorage.setItem(KEY_STORAGE, key);
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = !key;
  state.overviewTimer = setInterval(loadOverview, 10000);
  follow(gen);
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key").value.trim();
  if (key) start(key, false);
});
$("logout").addEventListener("click", () => showLogin(""));
$("search").addEventListener("input", () => { state.showing = PAGE; renderAccounts(); });
$("filter").addEventListener("change", () => { state.showing = PAGE; renderAccounts(); });
$("more").addEventListener("click", () => { state.showing += PAGE; renderAccounts(); });

const saved = localStorage.getItem(KEY_STORAGE);
if (saved) start(saved, false); else start("", true);
