// app.js - the litegate chat demo page.
//
// A chat is one lite topic, chatbot/<session id>. The page publishes the user's prompt to it
// (event "prompt", data {"text"}) and renders everything it streams from offset 0: prompts as user
// bubbles, "token" pieces appended to the current answer, "end" ({"reason":"done"|"cancelled"})
// closing it. Because the page is driven only by the stream, a reload, a second tab, a dropped
// connection or a restarted gateway all end up showing the same conversation.
//
// Query parameters: s=<session id> (the open chat), gateway=<origin> (default: this page's origin).

import { subscribe, publish } from './litegate.js';

const PARENT = 'chatbot';
const EVENTS = ['prompt', 'token', 'end', 'cancel', 'error'];
const STORE = 'litegate-demo.chats';
const STOP_GRACE_MS = 5000; // re-enable Send if no worker answers a Stop in this time

const params = new URLSearchParams(location.search);
const GATEWAY = params.get('gateway') || '';

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const el = {
  newChat: $('new-chat'),
  list: $('chat-list'),
  title: $('chat-title'),
  badge: $('conn-state'),
  offset: $('last-offset'),
  drop: $('drop'),
  messages: $('messages'),
  empty: $('empty'),
  error: $('error'),
  form: $('composer'),
  input: $('prompt-input'),
  send: $('send'),
  stop: $('stop'),
};

// ---- chats kept in localStorage ---------------------------------------------------------------

function loadChats() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE) || '[]');
    return Array.isArray(v) ? v.filter((c) => c && typeof c.id === 'string') : [];
  } catch {
    return [];
  }
}

function saveChats(chats) {
  localStorage.setItem(STORE, JSON.stringify(chats));
}

/** Add a chat (at the top), name it after its first prompt, and move it up when `move`. */
function touchChat(id, title, move) {
  const chats = loadChats();
  let i = chats.findIndex((c) => c.id === id);
  if (i < 0) {
    chats.unshift({ id, title: 'New chat', updated: Date.now() });
    i = 0;
  }
  const c = chats[i];
  let changed = false;
  if (title && c.title === 'New chat') {
    c.title = title;
    changed = true;
  }
  if (move && i > 0) {
    chats.splice(i, 1);
    chats.unshift(c);
    c.updated = Date.now();
    changed = true;
  }
  if (changed || chats.length !== loadChats().length) saveChats(chats);
  renderChats();
}

function shortTitle(text) {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 48 ? `${t.slice(0, 47)}…` : t;
}

function renderChats() {
  const chats = loadChats();
  el.list.replaceChildren(
    ...chats.map((c) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = chatUrl(c.id);
      a.textContent = c.title || 'New chat';
      a.title = c.title || c.id;
      a.dataset.testid = 'chat-item';
      a.dataset.id = c.id;
      if (c.id === session) a.setAttribute('aria-current', 'page');
      a.addEventListener('click', (ev) => {
        if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return; // new tab: let it
        ev.preventDefault();
        openChat(c.id, true);
      });
      li.append(a);
      return li;
    }),
  );
  const cur = chats.find((c) => c.id === session);
  el.title.textContent = cur ? cur.title : 'New chat';
}

function newSessionId() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function chatUrl(id) {
  const q = new URLSearchParams(location.search);
  q.set('s', id);
  return `${location.pathname}?${q}`;
}

// ---- the open chat ----------------------------------------------------------------------------

let session = null; // session id of the open chat
let sub = null;     // its litegate subscription
let answer = null;  // the open assistant bubble: {bubble, text, promptOffset, stopTimer}

function topic() {
  return `${PARENT}/${session}`;
}

function openChat(id, push) {
  if (sub) {
    // Leaving a chat that never got a message: forget it rather than list an empty "New chat".
    if (sub.lastOffset < 0 && id !== session) {
      const chats = loadChats();
      const c = chats.find((x) => x.id === session);
      if (c && c.title === 'New chat') saveChats(chats.filter((x) => x !== c));
    }
    sub.close();
  }
  session = id;
  answer = null;
  if (push) history.pushState({ s: id }, '', chatUrl(id));
  else history.replaceState({ s: id }, '', chatUrl(id));
  el.messages.replaceChildren(el.empty);
  el.empty.hidden = false;
  el.offset.textContent = 'offset –';
  showError('');
  touchChat(id, null, false);
  updateButtons();
  sub = subscribe(GATEWAY, topic(), {
    from: 0, // replay the whole conversation, then stream
    events: EVENTS,
    onMessage,
    onState,
    onGap: (info) => notice(`messages ${info.from}–${info.to - 1} have expired`),
    onReset: () => {
      answer = null;
      el.messages.replaceChildren(el.empty);
      el.empty.hidden = false;
      updateButtons();
    },
  });
  el.input.focus();
}

function onState(state, info) {
  el.badge.dataset.state = state;
  let text;
  switch (state) {
    case 'live': text = 'live'; break;
    case 'resumed': text = `resumed from offset ${info.from}`; break;
    case 'reconnecting': text = info.reason === 'offline' ? 'offline · reconnecting…' : 'reconnecting…'; break;
    case 'closed': text = 'closed'; break;
    default: text = 'connecting…';
  }
  el.badge.textContent = text;
  if (state === 'resumed') el.badge.dataset.from = String(info.from);
  else delete el.badge.dataset.from;
  el.drop.disabled = state === 'reconnecting' || state === 'closed';
}

function onMessage(m) {
  el.offset.textContent = `offset ${m.offset}`;
  el.offset.dataset.offset = String(m.offset);
  el.empty.hidden = true;
  switch (m.event) {
    case 'prompt': {
      if (answer) finishAnswer('interrupted'); // a new turn began without an end
      const text = m.data && typeof m.data.text === 'string' ? m.data.text : String(m.data ?? '');
      const b = document.createElement('div');
      b.className = 'bubble user';
      b.dataset.testid = 'prompt-bubble';
      b.dataset.offset = String(m.offset);
      b.textContent = text;
      append(b);
      startAnswer(m.offset);
      touchChat(session, shortTitle(text), false);
      break;
    }
    case 'token': {
      if (!answer) startAnswer(null);
      const piece = typeof m.data === 'string' ? m.data : JSON.stringify(m.data);
      answer.text.appendData(piece);
      answer.tokens += 1;
      answer.bubble.dataset.tokens = String(answer.tokens);
      answer.bubble.dataset.state = 'streaming';
      answer.bubble.dataset.lastOffset = String(m.offset);
      scrollDown();
      break;
    }
    case 'end': {
      if (!answer) startAnswer(null);
      finishAnswer(m.data && m.data.reason === 'cancelled' ? 'cancelled' : 'done');
      break;
    }
    case 'cancel': {
      if (answer) answer.meta.textContent = 'stopping…';
      break;
    }
    case 'error': {
      if (!answer) startAnswer(null);
      const msg = m.data && m.data.message ? m.data.message : JSON.stringify(m.data);
      finishAnswer('error', `error: ${msg}`);
      break;
    }
    default:
      break;
  }
  updateButtons();
}

function startAnswer(promptOffset) {
  const bubble = document.createElement('div');
  bubble.className = 'bubble assistant';
  bubble.dataset.testid = 'answer';
  bubble.dataset.state = 'waiting';
  bubble.dataset.tokens = '0';
  if (promptOffset != null) bubble.dataset.promptOffset = String(promptOffset);
  const span = document.createElement('span');
  span.className = 'text';
  span.dataset.testid = 'answer-text';
  const text = document.createTextNode('');
  span.append(text);
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.dataset.testid = 'answer-meta';
  bubble.append(span, meta);
  append(bubble);
  answer = { bubble, text, meta, promptOffset, tokens: 0, stopTimer: null, stopping: false };
}

function finishAnswer(state, note) {
  if (!answer) return;
  clearTimeout(answer.stopTimer);
  answer.bubble.dataset.state = state;
  const notes = { cancelled: 'stopped', interrupted: 'no end received', done: '' };
  answer.meta.textContent = note ?? notes[state] ?? '';
  answer = null;
}

function append(node) {
  const stick = nearBottom();
  el.messages.append(node);
  if (stick) el.messages.scrollTop = el.messages.scrollHeight;
}

function nearBottom() {
  const m = el.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function scrollDown() {
  if (nearBottom()) el.messages.scrollTop = el.messages.scrollHeight;
}

function notice(text) {
  const p = document.createElement('p');
  p.className = 'notice';
  p.textContent = text;
  append(p);
}

function showError(text) {
  el.error.textContent = text;
  el.error.hidden = !text;
}

function updateButtons() {
  const busy = answer !== null && !answer.stopping;
  el.send.disabled = busy || el.input.value.trim() === '';
  el.stop.disabled = answer === null;
}

// ---- actions ----------------------------------------------------------------------------------

async function send() {
  const text = el.input.value.trim();
  if (!text || (answer && !answer.stopping)) return;
  el.send.disabled = true;
  try {
    await publish(GATEWAY, topic(), 'prompt', { text });
    touchChat(session, shortTitle(text), true);
    el.input.value = '';
    autosize();
    showError('');
  } catch (err) {
    showError(`Could not send: ${err.message}`);
  }
  updateButtons();
}

async function stop() {
  if (!answer) return;
  const turn = answer;
  el.stop.disabled = true;
  try {
    const data = turn.promptOffset != null ? { prompt_offset: turn.promptOffset } : {};
    await publish(GATEWAY, topic(), 'cancel', data);
    showError('');
  } catch (err) {
    showError(`Could not stop: ${err.message}`);
    updateButtons();
    return;
  }
  // If no worker ends the turn (none running, say), let the user go on after a while.
  turn.stopTimer = setTimeout(() => {
    if (answer === turn) {
      turn.stopping = true;
      turn.meta.textContent = 'stop requested; no answer from the model';
      updateButtons();
    }
  }, STOP_GRACE_MS);
}

function autosize() {
  el.input.style.height = 'auto';
  el.input.style.height = `${Math.min(el.input.scrollHeight, 160)}px`;
}

el.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  send();
});
el.input.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    send();
  }
});
el.input.addEventListener('input', () => {
  autosize();
  updateButtons();
});
el.stop.addEventListener('click', stop);
el.drop.addEventListener('click', () => sub && sub.drop(1500));
el.newChat.addEventListener('click', () => openChat(newSessionId(), true));
window.addEventListener('popstate', () => {
  const id = new URLSearchParams(location.search).get('s');
  if (id && id !== session) openChat(id, false);
});
window.addEventListener('storage', (ev) => {
  if (ev.key === STORE) renderChats();
});

// ---- start ------------------------------------------------------------------------------------

{
  const fromUrl = params.get('s');
  const valid = fromUrl && /^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$/.test(fromUrl);
  const recent = loadChats()[0];
  openChat(valid ? fromUrl : recent ? recent.id : newSessionId(), false);
}

// For tests and the curious: the subscription of the open chat.
window.litegateDemo = {
  get subscription() { return sub; },
  get session() { return session; },
};
