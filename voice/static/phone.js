// 网页电话: microphone -> WebSocket (/phone/ws) -> the hotline's live call core -> reply audio back.
// Client -> server: {"type":"start","caller","sample_rate"} first, then binary 20 ms PCM16 frames,
// {"type":"dtmf","digit"}, {"type":"mark","name"} once a sentence's audio has finished playing,
// {"type":"cleared","played_ms"} after a clear, {"type":"hangup"}.
// Server -> client: binary PCM16 reply audio at the "ready" message's sample_rate; JSON "ready", "mark",
// "clear", "error" and the call's events (state, partial, final, turn, reply, heard, barge_in, latency, ended).
"use strict";

const CAPTURE_RATE = 16000;
const LEAD_SECONDS = 0.06; // schedule reply audio this far ahead when playback (re)starts
const MAX_LEAD_SECONDS = 0.3; // each underrun (audio arrived late) adds 20 ms of lead, up to this
const STATE_TEXT = {
  idle: "未接通", connecting: "连接中…", listening: "正在听", thinking: "思考中", speaking: "正在说",
  ended: "已挂断", error: "出错了",
};
// per-turn stages of a "latency" event (ms): caller's speech end -> text -> turn taken -> dialog -> first reply audio
const STAGE_TEXT = {
  asr: "识别", wait: "等待", understand: "理解", dialog: "对话", reply: "合成", total: "合计", first_audio: "首声",
};
const STAGE_TITLE = {
  asr: "说完话到识别出文字", wait: "识别出文字到确认说完（轮次判断）", understand: "归一化、意图与情绪",
  dialog: "对话管理与查询", reply: "对话完成到第一帧回复音频（首句合成）", total: "说完话到第一帧回复音频",
  first_audio: "说完话到第一帧任何声音（含“好的，我帮您查一下”）",
};
// the hotline's targets: over these the figure is shown in red
const SLOW_MS = { total: 1500, first_audio: 600 };
const EMOTION_TEXT = { neutral: "平静", anxious: "着急", angry: "生气" };
const OUTCOME_TEXT = { resolved: "已解决", transferred: "已转人工", callback: "已预约回电", abandoned: "未完成" };
const REASON_TEXT = {
  "caller hung up": "您挂断了电话", "the hotline ended the call": "客服结束了通话",
  "protocol error": "网页发送了无法识别的数据", "server shutting down": "服务器正在关闭",
};

// Everything a test (or a curious person in the console) may want to read; fresh for each call.
const freshCall = () => ({
  callId: null, sentFrames: 0, receivedSamples: 0, playedSamples: 0, underruns: 0,
  partials: [], finals: [], replies: [], intents: [], emotions: [], latencies: [],
  marksAcked: [], clears: 0, errors: [], events: [],
});
const phone = (window.phone = { state: "idle", ...freshCall() });

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------------------------------
// Page

const ui = {
  setState(state) {
    phone.state = state;
    const el = $("state");
    el.textContent = STATE_TEXT[state] || state;
    el.className = `state ${state}`;
    el.dataset.state = state;
    const live = !["idle", "ended", "error"].includes(state);
    $("call").disabled = live;
    $("hangup").disabled = !live;
    $("caller").disabled = live;
    for (const key of $("keypad").querySelectorAll("button")) key.disabled = !live;
  },
  notice(text) {
    $("notice").textContent = text || "";
  },
  line(who, text, cls) {
    const li = document.createElement("li");
    li.className = cls;
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    if (who) {
      const label = document.createElement("span");
      label.className = "who";
      label.textContent = who;
      bubble.append(label);
    }
    bubble.append(document.createTextNode(text));
    li.append(bubble);
    $("log").append(li);
    li.scrollIntoView({ block: "end" });
    return li;
  },
  intents(intents) {
    const box = $("intents");
    box.replaceChildren();
    if (!intents.length) box.textContent = "—";
    for (const intent of intents) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = intent.name;
      const conf = document.createElement("span");
      conf.className = "conf";
      conf.textContent = Number(intent.confidence).toFixed(2);
      chip.append(conf);
      const slots = Object.entries(intent.slots || {});
      if (slots.length) chip.title = slots.map(([k, v]) => `${k}=${v}`).join("，");
      box.append(chip);
    }
  },
  emotion(emotion) {
    const el = $("emotion");
    el.className = `emotion ${emotion.label}`;
    const cues = (emotion.cues || []).length ? `（${emotion.cues.join("、")}）` : "";
    el.textContent = `${EMOTION_TEXT[emotion.label] || emotion.label} ${Number(emotion.score).toFixed(2)}${cues}`;
  },
  latency(turn, stages) {
    const table = $("latency");
    const head = table.tHead.rows[0];
    const known = [...head.cells].slice(1).map((c) => c.dataset.stage);
    for (const stage of Object.keys(stages)) {
      if (known.includes(stage)) continue;
      const th = document.createElement("th");
      th.dataset.stage = stage;
      th.textContent = STAGE_TEXT[stage] || stage;
      th.title = STAGE_TITLE[stage] || stage;
      head.append(th);
      known.push(stage);
      for (const row of table.tBodies[0].rows) row.insertCell().textContent = "";
    }
    const row = table.tBodies[0].insertRow();
    row.insertCell().textContent = `第 ${turn} 轮`;
    for (const stage of known) {
      const cell = row.insertCell();
      const ms = stages[stage];
      cell.textContent = ms == null ? "" : Math.round(ms);
      if (ms != null && ms > (SLOW_MS[stage] ?? Infinity)) cell.className = "slow";
    }
  },
  digits(text) {
    $("digits").textContent = text;
  },
  meters() {
    $("sent").textContent = `${((phone.sentFrames * 20) / 1000).toFixed(1)} 秒`;
    $("played").textContent = `${(phone.playedSamples / (player.rate || 8000)).toFixed(1)} 秒`;
    $("underruns").textContent = `${phone.underruns} 次`;
  },
};

// ------------------------------------------------------------------------------------------
// Reply audio: PCM16 chunks scheduled back to back on one AudioContext (gapless), marks acked
// when the audio before them has finished playing, everything dropped at once on "clear".

const player = {
  ctx: null, rate: 8000, next: 0, lead: LEAD_SECONDS, queue: [], onMark: null,

  reset(ctx, rate, onMark) {
    Object.assign(this, { ctx, rate, next: 0, lead: LEAD_SECONDS, queue: [], onMark });
  },
  play(bytes) {
    const pcm = new Int16Array(bytes);
    if (!pcm.length || !this.ctx) return;
    phone.receivedSamples += pcm.length;
    const buffer = this.ctx.createBuffer(1, pcm.length, this.rate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.ctx.destination);
    const now = this.ctx.currentTime;
    if (this.next && this.next < now && now - this.next < 0.5) {
      phone.underruns += 1; // a gap inside a reply: play further ahead from now on
      this.lead = Math.min(MAX_LEAD_SECONDS, this.lead + 0.02);
    }
    const start = Math.max(this.next, now + this.lead);
    const item = { source, start, samples: pcm.length, marks: [], done: false };
    source.onended = () => this.finished(item);
    source.start(start);
    this.next = start + buffer.duration;
    this.queue.push(item);
  },
  finished(item) {
    if (item.done) return;
    item.done = true;
    phone.playedSamples += item.samples;
    this.queue = this.queue.filter((q) => q !== item);
    for (const name of item.marks) this.onMark(name);
    ui.meters();
  },
  mark(name) {
    const last = this.queue[this.queue.length - 1];
    if (last) last.marks.push(name);
    else this.onMark(name); // nothing left to play: the sentence has been heard
  },
  clear() {
    let played = 0;
    const now = this.ctx ? this.ctx.currentTime : 0;
    for (const item of this.queue) {
      item.done = true;
      item.source.onended = null;
      const heard = Math.max(0, Math.min(item.samples, Math.floor((now - item.start) * this.rate)));
      played += heard;
      try { item.source.stop(); } catch (_) { /* never started */ }
    }
    phone.playedSamples += played;
    this.queue = [];
    this.next = 0;
    ui.meters();
    return Math.round((played / this.rate) * 1000);
  },
};

// ------------------------------------------------------------------------------------------
// The call

let call = null; // {ws, ctx, stream, node, turn, digits, ready, heardSinceTurn}

async function startCall() {
  ui.notice("");
  if (!window.isSecureContext || !navigator.mediaDevices) {
    ui.notice("浏览器只允许 https 或 127.0.0.1 页面使用麦克风，请换用这两种地址打开。");
    return;
  }
  Object.assign(phone, freshCall());
  ui.setState("connecting");
  $("log").replaceChildren();
  $("latency").tBodies[0].replaceChildren();
  ui.intents([]);
  $("emotion").textContent = "—";
  $("emotion").className = "emotion";
  ui.digits("");
  ui.meters();
  let stream = null;
  let ctx = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/phone/static/phone-capture.js");
    await ctx.resume();
    const node = new AudioWorkletNode(ctx, "phone-capture");
    const mute = ctx.createGain();
    mute.gain.value = 0;
    ctx.createMediaStreamSource(stream).connect(node).connect(mute).connect(ctx.destination);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/phone/ws`);
    ws.binaryType = "arraybuffer";
    call = { ws, ctx, stream, node, turn: 0, digits: "", ready: false, heardSinceTurn: false };
    node.port.onmessage = (msg) => sendFrame(msg.data);
    ws.onopen = () => send({ type: "start", caller: $("caller").value.trim() || null, sample_rate: CAPTURE_RATE });
    ws.onmessage = (msg) => (typeof msg.data === "string" ? onEvent(JSON.parse(msg.data)) : player.play(msg.data));
    ws.onclose = (ev) => finish(ev.reason);
  } catch (err) {
    phone.errors.push(String(err));
    ui.notice(err && err.name === "NotAllowedError" ? "没有麦克风权限，请在浏览器中允许使用麦克风。" : `无法接通：${err}`);
    if (stream) for (const track of stream.getTracks()) track.stop();
    if (ctx) ctx.close();
    call = null;
    ui.setState("error");
  }
}

function send(message) {
  if (call && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify(message));
}

function sendFrame(buffer) {
  if (!call || !call.ready || call.ws.readyState !== WebSocket.OPEN) return;
  call.ws.send(buffer);
  phone.sentFrames += 1;
  const pcm = new Int16Array(buffer);
  let peak = 0;
  for (let i = 0; i < pcm.length; i++) peak = Math.max(peak, Math.abs(pcm[i]));
  $("level").style.width = `${Math.min(100, (peak / 32768) * 300).toFixed(0)}%`;
  if (phone.sentFrames % 25 === 0) ui.meters();
}

const handlers = {
  ready(ev) {
    call.ready = true;
    phone.callId = ev.call_id;
    $("callid").textContent = ev.call_id;
    player.reset(call.ctx, ev.sample_rate, (name) => {
      phone.marksAcked.push(name);
      send({ type: "mark", name });
    });
    ui.setState("listening");
    ui.line(null, "已接通，请说话", "system");
  },
  state(ev) {
    ui.setState(ev.state);
  },
  partial(ev) {
    phone.partials.push(ev.text);
    $("partial").textContent = ev.text;
  },
  final(ev) {
    phone.finals.push(ev.text);
    $("partial").textContent = "";
    if (!ev.text) return;
    call.heardSinceTurn = true;
    ui.line("您", ev.text, "caller final").title = `置信度 ${Number(ev.confidence).toFixed(2)}`;
  },
  turn(ev) {
    if (!call.heardSinceTurn && ev.text) ui.line("您", ev.text, "caller final"); // keys taken after a pause
    call.heardSinceTurn = false;
    call.digits = "";
    ui.digits("");
    phone.intents.push(ev.intents);
    phone.emotions.push(ev.emotion);
    ui.intents(ev.intents);
    ui.emotion(ev.emotion);
  },
  reply(ev) {
    phone.replies.push(ev.text);
    ui.line("客服", ev.text, "bot");
  },
  heard(ev) {
    if (ev.complete) return;
    const said = [...$("log").querySelectorAll("li.bot")].reverse().find((li) => li.textContent.includes(ev.text));
    if (said) said.classList.add("interrupted"); // the caller did not hear this reply to its end
  },
  latency(ev) {
    const stages = {};
    for (const [key, value] of Object.entries(ev)) if (key.endsWith("_ms")) stages[key.slice(0, -3)] = value;
    call.turn += 1;
    phone.latencies.push(stages);
    ui.latency(call.turn, stages);
  },
  mark(ev) {
    player.mark(ev.name);
  },
  clear() {
    phone.clears += 1;
    send({ type: "cleared", played_ms: player.clear() });
  },
  ended(ev) {
    const outcome = OUTCOME_TEXT[ev.outcome] || ev.outcome;
    const reason = REASON_TEXT[ev.reason] || ev.reason;
    ui.line(null, `通话结束：${reason}（${outcome}）`, "system");
  },
  error(ev) {
    phone.errors.push(ev.message);
    ui.notice(ev.message);
    ui.line(null, ev.message, "system error");
  },
};

function onEvent(ev) {
  phone.events.push(ev);
  const handler = handlers[ev.type];
  if (handler) handler(ev);
}

function pressKey(digit) {
  if (!call || !call.ready) return;
  call.digits += digit;
  ui.digits(call.digits);
  send({ type: "dtmf", digit });
  if (digit === "#") {
    ui.line("您（按键）", call.digits, "caller final");
    call.heardSinceTurn = true;
    call.digits = "";
  }
}

function hangUp() {
  player.clear();
  send({ type: "hangup" });
  if (call) call.ws.close(1000, "caller hung up");
}

function teardown() {
  if (!call) return;
  const { stream, ctx, node } = call;
  node.port.onmessage = null;
  for (const track of stream.getTracks()) track.stop();
  $("level").style.width = "0";
  // the goodbye may still be playing: close the audio once it has been heard
  const left = Math.max(0, player.ctx === ctx ? player.next - ctx.currentTime : 0);
  setTimeout(() => ctx.close(), left * 1000 + 100);
}

function finish(reason) {
  if (!call) return;
  const failed = phone.state === "connecting" && !call.ready;
  teardown();
  call = null;
  ui.setState(failed ? "error" : "ended");
  if (failed && !$("notice").textContent) ui.notice(reason || "无法连接到热线服务器。");
  ui.meters();
}

document.addEventListener("DOMContentLoaded", () => {
  ui.setState("idle");
  $("call").addEventListener("click", startCall);
  $("hangup").addEventListener("click", hangUp);
  for (const key of $("keypad").querySelectorAll("button")) {
    key.addEventListener("click", () => pressKey(key.textContent));
  }
});
