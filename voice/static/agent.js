// 坐席工作台: sign in, presence, the queue, a transfer ringing, then the call: transcript, customer,
// orders, knowledge base, audio, wrap-up notes. HTTP: /agent/login, /agent/logout, /agent/api/*.
// WS /agent/ws pushes JSON: hello, offer, cancel, accepted, call, line, assist, ended, signed_out.
// WS /agent/audio/<call id>?rate=16000: binary PCM16 both ways (caller 8 kHz in, our microphone out).
// Every text from a call's record is the caller's or the shop's: it is only ever set as textContent.
"use strict";

const CAPTURE_RATE = 16000; // what phone-capture.js sends
const CALLER_RATE = 8000;
const QUEUE_EVERY_MS = 3000;
const RECONNECT_MS = 2000;
const AUDIO_TRIES = 60; // the caller's server opens the call's audio once they have heard the transfer sentence
const AUDIO_RETRY_MS = 500;
const PRESENCE_TEXT = { available: "空闲", busy: "通话中", wrap_up: "整理中", offline: "离线" };
const SKILL_TEXT = {
  general: "综合", logistics: "物流", aftersale: "售后", complaint: "投诉", promotion: "促销",
  sales: "售前", vip: "VIP",
};
const SPEAKER_TEXT = { caller: "客户", bot: "机器人", agent: "坐席" };
const CANCEL_TEXT = {
  no_answer: "响铃超时，已转给其他坐席", declined: "已拒接", offline: "您已离线", hung_up: "客户已挂断",
  caller_hung_up: "客户已挂断", back_to_bot: "客户已返回自助服务",
};
const EMOTION_TEXT = { neutral: "平静", anxious: "着急", angry: "生气" };
const VIP_TEXT = { normal: "普通会员", silver: "银卡会员", gold: "金卡会员", platinum: "白金会员", diamond: "钻石会员" };
const STATUS_TEXT = {
  unpaid: "待付款", paid: "待发货", shipped: "已发货", delivered: "已签收", refunding: "退款中", cancelled: "已取消",
};

// what a test (or the console) may read
const desk = (window.desk = {
  me: null, offer: null, call: null, events: [], lines: [], assists: [], errors: [], saved: [],
  audio: { state: "off", received: 0, sent: 0 },
});

const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
};
const clear = (node) => node.replaceChildren();

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try {
    data = await res.json();
  } catch (_) {
    data = null;
  }
  if (!res.ok) {
    const err = new Error((data && data.error) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return data;
}

function notice(text) {
  $("notice").textContent = text || "";
}

// ------------------------------------------------------------------------------------------
// Callbacks the hotline promised: claim one, ring the number, then note how it went

function refreshCallbacks() {
  return refreshList("/agent/api/callbacks", "callbacks", callbackItem);
}

// One of the side lists (the queue, the callbacks): GET `path`, its `name` array drawn by `item`
// into #name, with #name-count and #name-empty.
async function refreshList(path, name, item) {
  if (!desk.me) return;
  try {
    const entries = (await api("GET", path))[name];
    const list = $(name);
    clear(list);
    for (const entry of entries) list.append(item(entry));
    $(`${name}-count`).textContent = String(entries.length);
    $(`${name}-empty`).hidden = entries.length > 0;
  } catch (err) {
    if (err.status === 401) showLogin("登录已过期，请重新登录");
  }
}

function callbackItem(cb) {
  const li = el("li", cb.summary[0] || cb.reason || "（无摘要）", cb.status);
  li.dataset.callId = cb.call_id;
  const meta = [
    cb.customer || "未识别客户", cb.number, SKILL_TEXT[cb.skill] || cb.skill, `优先级 ${cb.priority}`,
    `承诺${cb.promised}回电`, cb.reason,
  ].filter(Boolean);
  li.append(el("span", meta.join(" · "), "meta"));
  if (cb.status === "open") {
    const take = el("button", "我来回电", "small ok");
    take.type = "button";
    take.addEventListener("click", () => claimCallback(cb.call_id));
    li.append(take);
  } else {
    const notes = el("textarea", null, "callback-notes");
    notes.maxLength = 2000;
    notes.placeholder = "回电结果（写入客户历史）";
    const made = el("button", "已回电", "small ok");
    made.type = "button";
    made.addEventListener("click", () => callbackDone(cb.call_id, notes.value));
    li.append(notes, made);
  }
  return li;
}

async function claimCallback(callId) {
  try {
    await api("POST", `/agent/api/callbacks/${encodeURIComponent(callId)}/claim`);
  } catch (err) {
    notice(err.status === 409 ? "这条回电已被其他坐席领取" : `领取失败：${err.message}`);
  }
  refreshCallbacks();
}

async function callbackDone(callId, notes) {
  try {
    await api("POST", `/agent/api/callbacks/${encodeURIComponent(callId)}/done`, { notes });
    notice("回电已完成");
  } catch (err) {
    notice(`保存失败：${err.message}`);
  }
  refreshCallbacks();
}

// ------------------------------------------------------------------------------------------
// Sign-in and presence

function showLogin(message) {
  desk.me = null;
  $("login").hidden = false;
  $("desk").hidden = true;
  $("who").hidden = true;
  $("login-error").textContent = message || "";
  closeSocket();
}

function showDesk(me) {
  $("login").hidden = true;
  $("desk").hidden = false;
  $("who").hidden = false;
  setMe(me);
  openSocket();
  refreshQueue();
  refreshCallbacks();
}

function setMe(me) {
  desk.me = me;
  $("agent-name").textContent = `${me.name}（${me.id}）`;
  const badge = $("presence");
  badge.textContent = PRESENCE_TEXT[me.presence] || me.presence;
  badge.className = `presence ${me.presence}`;
  badge.dataset.presence = me.presence;
  const onCall = Boolean(desk.call);
  $("go-available").disabled = onCall || me.presence === "available";
  $("go-wrapup").disabled = onCall || me.presence === "wrap_up";
  $("go-offline").disabled = onCall || me.presence === "offline";
  if (!desk.offer && !desk.call) {
    $("idle-text").textContent =
      me.presence === "available" ? "空闲中，等待转接来电…" : "点击“空闲”开始接听转接来电。";
  }
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  $("login-submit").disabled = true;
  try {
    const me = await api("POST", "/agent/login", { agent_id: $("agent-id").value.trim(), password: $("password").value });
    $("password").value = "";
    showDesk(me);
  } catch (err) {
    const text = err.status === 401 ? "工号或密码不正确" : err.status === 429 ? "失败次数过多，请一分钟后再试" : `登录失败：${err.message}`;
    $("login-error").textContent = text;
  } finally {
    $("login-submit").disabled = false;
  }
}

async function setPresence(presence) {
  try {
    setMe(await api("POST", "/agent/api/presence", { presence }));
  } catch (err) {
    failed(err);
  }
}

async function logout() {
  try {
    await api("POST", "/agent/logout");
  } catch (err) {
    desk.errors.push(String(err.message));
  }
  showLogin("已退出");
}

function failed(err) {
  desk.errors.push(String(err.message));
  if (err.status === 401) {
    showLogin("登录已过期，请重新登录");
    return;
  }
  notice(`操作失败：${err.message}`);
}

// ------------------------------------------------------------------------------------------
// The queue

function refreshQueue() {
  return refreshList("/agent/api/queue", "queue", queueItem);
}

function queueItem(entry) {
  const li = el("li", entry.summary || "（无摘要）", entry.callback ? "callback" : "");
  const meta = [
    SKILL_TEXT[entry.skill] || entry.skill, `优先级 ${entry.priority}`, `已等 ${entry.wait_s} 秒`,
    entry.vip ? "VIP" : "", entry.dialect || "", entry.callback ? "需回电（来电已断开）" : "",
  ].filter(Boolean);
  li.append(el("span", meta.join(" · "), "meta"));
  return li;
}

// ------------------------------------------------------------------------------------------
// The live socket

let socket = null;
let reconnect = null;

function openSocket() {
  if (socket) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/agent/ws`);
  socket.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  socket.onclose = () => {
    socket = null;
    if (desk.me && !reconnect) reconnect = setTimeout(() => ((reconnect = null), openSocket()), RECONNECT_MS);
  };
}

function closeSocket() {
  if (reconnect) clearTimeout(reconnect);
  reconnect = null;
  if (socket) {
    socket.onclose = null;
    socket.close();
    socket = null;
  }
}

function onEvent(event) {
  desk.events.push(event);
  switch (event.type) {
    case "hello":
      setMe(event.me);
      break;
    case "offer":
      showOffer(event.call, event.ring_s);
      break;
    case "cancel":
      if (desk.offer && desk.offer.call_id === event.call_id) {
        hideOffer();
        notice(`转接已取消：${CANCEL_TEXT[event.why] || event.why || ""}`);
      } else if (desk.call && desk.call.call_id === event.call_id && $("wrapup").hidden) {
        notice(`通话已结束：${CANCEL_TEXT[event.why] || event.why || ""}，请填写小结`);
        stopAudio();
        showWrapUp();
      }
      break;
    case "call":
      showCall(event.call);
      break;
    case "line":
      if (desk.call && desk.call.call_id === event.call_id) addLine(event.speaker, event.text, true);
      break;
    case "assist":
      if (desk.call && desk.call.call_id === event.call_id) {
        desk.assists.push(event.clauses);
        showClauses(event.clauses, true);
      }
      break;
    case "ended":
      if (desk.call && desk.call.call_id === event.call_id) {
        notice("客户已结束通话，请填写小结");
        showWrapUp();
      }
      break;
    case "signed_out":
      showLogin("登录已过期，请重新登录");
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------------------------------------
// A transfer ringing

let ringTimer = null;

function showOffer(call, ringS) {
  desk.offer = call;
  $("idle").hidden = true;
  $("offer").hidden = false;
  notice("");
  $("offer-skill").textContent = SKILL_TEXT[call.skill] || call.skill || "";
  $("offer-priority").textContent = call.priority ? `优先级 ${call.priority}` : "";
  const customer = call.customer;
  const vip = customer && customer.vip_level && customer.vip_level !== "normal";
  $("offer-vip").hidden = !vip;
  $("offer-vip").textContent = vip ? `VIP ${VIP_TEXT[customer.vip_level] || customer.vip_level}` : "";
  $("offer-dialect").textContent = (customer && customer.dialect) || "";
  $("offer-customer").textContent = customer ? `${customer.name}（${customer.phone || "无电话"}）` : "未识别的来电";
  $("offer-reason").textContent = call.reason || "—";
  $("offer-orders").textContent = (call.orders || []).map((o) => o.id).join("，") || "—";
  const summary = $("offer-summary");
  clear(summary);
  for (const line of (call.summary || []).slice(0, 3)) summary.append(el("li", line));
  const until = Date.now() + (ringS == null ? 20 : ringS) * 1000;
  const tick = () => {
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    $("ring").textContent = String(left);
  };
  clearInterval(ringTimer);
  tick();
  ringTimer = setInterval(tick, 250);
  $("accept").disabled = false;
  $("decline").disabled = false;
  showCustomer(call);
}

function hideOffer() {
  desk.offer = null;
  clearInterval(ringTimer);
  $("offer").hidden = true;
  if (!desk.call) {
    $("idle").hidden = false;
    clearCustomer();
  }
}

async function accept() {
  const offer = desk.offer;
  if (!offer) return;
  $("accept").disabled = true;
  $("decline").disabled = true;
  try {
    const record = await api("POST", `/agent/api/calls/${encodeURIComponent(offer.call_id)}/accept`);
    hideOffer();
    showCall(record);
    refreshMe();
  } catch (err) {
    hideOffer();
    failed(err);
  }
}

async function decline() {
  const offer = desk.offer;
  if (!offer) return;
  hideOffer();
  try {
    await api("POST", `/agent/api/calls/${encodeURIComponent(offer.call_id)}/decline`);
  } catch (err) {
    failed(err);
  }
}

async function refreshMe() {
  try {
    setMe(await api("GET", "/agent/api/me"));
  } catch (err) {
    failed(err);
  }
}

// ------------------------------------------------------------------------------------------
// The call

function showCall(call) {
  desk.call = call;
  $("idle").hidden = true;
  $("offer").hidden = true;
  $("call").hidden = false;
  $("wrapup").hidden = true;
  $("finish").disabled = false;
  $("call-id").textContent = call.call_id;
  const summary = $("call-summary");
  clear(summary);
  for (const line of call.summary || []) summary.append(el("li", line));
  clear($("transcript"));
  for (const line of call.transcript || []) addLine(line.speaker, line.text, false);
  showCustomer(call);
  showClauses(call.kb || [], false);
  if (desk.me) setMe(desk.me);
  // the record comes twice (the accept's answer and the feed's "call"): one audio connection per call
  if (audioCall !== call.call_id) {
    audioCall = call.call_id;
    startAudio(call);
  }
}

function addLine(speaker, text, live) {
  if (live) desk.lines.push({ speaker, text });
  const li = el("li", null, `${speaker || ""}${live ? " live" : ""}`);
  li.append(el("span", SPEAKER_TEXT[speaker] || speaker || "", "who"), document.createTextNode(text || ""));
  $("transcript").append(li);
  li.scrollIntoView({ block: "nearest" });
}

function showCustomer(call) {
  const c = call.customer;
  $("p-name").textContent = c ? c.name : "未识别";
  $("p-phone").textContent = (c && c.phone) || call.caller || "—";
  $("p-vip").textContent = c && c.vip_level ? VIP_TEXT[c.vip_level] || c.vip_level : "—";
  $("p-dialect").textContent = (c && c.dialect) || "—";
  const history = $("history");
  clear(history);
  for (const h of (c && c.history) || []) {
    const li = el("li", `${(h.at || "").slice(0, 16).replace("T", " ")} ${h.channel || ""}：${h.summary || ""}`);
    if (h.complaint) li.className = "complaint";
    history.append(li);
  }
  const orders = $("orders");
  clear(orders);
  for (const o of call.orders || []) {
    const items = (o.items || []).map((i) => `${i.name} ${i.color || ""} ${i.size || ""}×${i.qty}`).join("；");
    const money = o.total_yuan != null ? ` ￥${o.total_yuan}` : "";
    const li = el("li", `${o.id} ${STATUS_TEXT[o.status] || o.status || ""}${money}`);
    if (items) li.append(el("div", items, "hint"));
    if (o.tracking) li.append(el("div", `物流：${o.tracking}`, "hint"));
    orders.append(li);
  }
  const trend = (call.emotion_trend || []).map((e) => EMOTION_TEXT[e] || e).join(" → ");
  $("p-dialect").title = trend ? `情绪：${trend}` : "";
}

function clearCustomer() {
  for (const id of ["p-name", "p-phone", "p-vip", "p-dialect"]) $(id).textContent = "—";
  clear($("history"));
  clear($("orders"));
  clear($("kb"));
  $("kb-source").textContent = "";
}

function showClauses(clauses, live) {
  const kb = $("kb");
  if (live) {
    for (const old of kb.querySelectorAll("li.live")) old.remove();
  } else {
    clear(kb);
  }
  const items = clauses.map((c) => {
    const li = el("li", null, live ? "live" : "");
    li.append(el("span", c.title || c.id, "title"), document.createTextNode(c.text || ""));
    return li;
  });
  kb.prepend(...items);
  $("kb-source").textContent = live ? "（随通话实时更新）" : "（转接时的推荐）";
}

async function finishCall() {
  const call = desk.call;
  if (!call) return;
  $("finish").disabled = true;
  stopAudio();
  try {
    setMe(await api("POST", `/agent/api/calls/${encodeURIComponent(call.call_id)}/finish`));
  } catch (err) {
    failed(err);
  }
  showWrapUp();
}

function showWrapUp() {
  $("finish").disabled = true;
  $("wrapup").hidden = false;
  $("notes").focus();
}

async function saveWrapUp() {
  const call = desk.call;
  if (!call) return;
  $("save").disabled = true;
  try {
    const notes = $("notes").value;
    const done = await api("POST", `/agent/api/calls/${encodeURIComponent(call.call_id)}/wrapup`, { notes });
    desk.saved.push({ call_id: call.call_id, notes, recorded: done.recorded });
    stopAudio();
    desk.call = null;
    $("notes").value = "";
    $("call").hidden = true;
    $("idle").hidden = false;
    clearCustomer();
    notice(done.recorded ? "小结已保存到客户历史记录" : "通话已结束（未识别客户，小结未写入历史）");
    await setPresence("available");
  } catch (err) {
    failed(err);
  } finally {
    $("save").disabled = false;
  }
}

// ------------------------------------------------------------------------------------------
// Audio: the caller's voice in, the agent's microphone out

let audio = null;

function setAudioState(state, text) {
  desk.audio.state = state;
  const badge = $("audio-state");
  badge.textContent = text;
  badge.className = `audio-state ${state === "on" ? "on" : ""}`;
}

let audioCall = null; // the call whose audio this page has connected (or is connecting)

async function startAudio(call, tries = 0) {
  stopAudio();
  if (!navigator.mediaDevices || !window.AudioContext) {
    setAudioState("off", "浏览器不支持语音");
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/agent/audio/${encodeURIComponent(call.call_id)}?rate=${CAPTURE_RATE}`;
  const ctx = new AudioContext();
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const state = (audio = { ctx, ws, stream: null, node: null, playhead: 0, call: call.call_id });
  setAudioState("connecting", "语音连接中…");
  ws.onmessage = (msg) => {
    if (typeof msg.data !== "string") play(state, msg.data);
  };
  ws.onclose = (msg) => {
    if (audio !== state) return;
    stopAudio();
    // 4404: the call's audio is not open yet; 4409: held by a page that is going (the caller's server
    // may not have seen it leave yet): try again, a while
    if ((msg.code === 4404 || msg.code === 4409) && tries < AUDIO_TRIES && desk.call && desk.call.call_id === call.call_id) {
      setAudioState("off", "等待语音接入…");
      setTimeout(() => desk.call && desk.call.call_id === call.call_id && startAudio(call, tries + 1), AUDIO_RETRY_MS);
    } else {
      setAudioState("off", msg.code === 1000 ? "语音已结束" : "语音未接通");
    }
  };
  ws.onopen = async () => {
    setAudioState("on", "语音已接通");
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      if (audio !== state) {
        for (const track of stream.getTracks()) track.stop();
        return;
      }
      await ctx.audioWorklet.addModule("/phone/static/phone-capture.js");
      const node = new AudioWorkletNode(ctx, "phone-capture");
      const mute = ctx.createGain();
      mute.gain.value = 0;
      ctx.createMediaStreamSource(stream).connect(node).connect(mute).connect(ctx.destination);
      node.port.onmessage = (msg) => {
        if (ws.readyState === WebSocket.OPEN) {
          ws.send(msg.data);
          desk.audio.sent += 1;
        }
      };
      state.stream = stream;
      state.node = node;
    } catch (err) {
      desk.errors.push(`microphone: ${err.message}`);
      setAudioState("on", "语音已接通（麦克风不可用）");
    }
  };
}

function play(state, data) {
  const pcm = new Int16Array(data);
  if (!pcm.length) return;
  const buffer = state.ctx.createBuffer(1, pcm.length, CALLER_RATE);
  const samples = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  const source = state.ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(state.ctx.destination);
  const now = state.ctx.currentTime;
  const start = state.playhead > now ? state.playhead : now + 0.06;
  source.start(start);
  state.playhead = start + buffer.duration;
  desk.audio.received += pcm.length;
}

function stopAudio() {
  const state = audio;
  audio = null;
  if (!state) return;
  if (state.node) state.node.port.onmessage = null;
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  if (state.ws.readyState <= WebSocket.OPEN) state.ws.close(1000);
  state.ctx.close().catch(() => {});
  setAudioState("off", "语音未接通");
}

// ------------------------------------------------------------------------------------------

async function start() {
  $("login-form").addEventListener("submit", login);
  $("go-available").addEventListener("click", () => setPresence("available"));
  $("go-wrapup").addEventListener("click", () => setPresence("wrap_up"));
  $("go-offline").addEventListener("click", () => setPresence("offline"));
  $("logout").addEventListener("click", logout);
  $("accept").addEventListener("click", accept);
  $("decline").addEventListener("click", decline);
  $("finish").addEventListener("click", finishCall);
  $("save").addEventListener("click", saveWrapUp);
  setInterval(refreshQueue, QUEUE_EVERY_MS);
  setInterval(refreshCallbacks, QUEUE_EVERY_MS);
  try {
    showDesk(await api("GET", "/agent/api/me"));
  } catch (err) {
    showLogin(err.status === 401 ? "" : `无法连接服务器：${err.message}`);
  }
}

start();
