// Real-browser tests of the chat demo (web-demo/) against the real litegate gateway.
//
// Debian's chromium, driven headless by playwright-core (no browser download). The test plays the
// model worker itself: it POSTs a known sequence of `token` messages over HTTP while the page
// streams, so it knows exactly what text must end up on the page, and checks that no token is lost
// or repeated across a drop, going offline, a gateway restart, a reload and a second tab.
//
// Environment:
//   LITEGATE_BIN      gateway binary (default: <repo>/build/gateway/litegate)
//   CHROMIUM          browser (default: /usr/bin/chromium)
//   LITEGATE_CONFIG   config file to start from (default: <repo>/conf/litegate.json if present)
//   ARTIFACTS         screenshots and gateway logs (default: tests/browser/artifacts)
//
// Run: cd tests/browser && npm ci && node --test --test-concurrency=1 demo.test.mjs  (or ./run.sh)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const BIN = path.resolve(process.env.LITEGATE_BIN || path.join(repo, 'build/gateway/litegate'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ARTIFACTS || path.join(here, 'artifacts');
const CHROMIUM_ARGS = [
  '--no-sandbox', // CI runs as root
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ---- the gateway process ----------------------------------------------------------------------

const gw = {
  port: 0,
  dataDir: '',
  configFile: null,
  proc: null,
  starts: 0,
  base: '',    // http://127.0.0.1:PORT, the API
  pageBase: '', // where the page is served (the gateway itself, unless it does not serve it)
  staticServer: null,
};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Parent of the gap test: keeps only the last 5 messages of each topic. */
const GAP_PARENT = { name: 'gaptest', max_retained: 5 };

/**
 * The config the gateway runs on: a copy of the default config (or the built-in defaults' parents)
 * plus the gap test's parent, with relative paths made absolute. --listen and --data-dir override
 * the rest.
 */
async function makeConfig(tmp) {
  const src = process.env.LITEGATE_CONFIG || path.join(repo, 'conf/litegate.json');
  const cfg = fs.existsSync(src)
    ? JSON.parse(await fsp.readFile(src, 'utf8'))
    : { parents: [{ name: 'chatbot' }, { name: 'agent' }] };
  const absolutize = (v) => {
    if (Array.isArray(v)) return v.map(absolutize);
    if (v && typeof v === 'object') {
      for (const k of Object.keys(v)) v[k] = absolutize(v[k]);
      return v;
    }
    // A relative path that names something in the repo (the web-demo dir, say): make it absolute,
    // since the copy lives in a temp dir.
    if (typeof v === 'string' && v && v !== '.' && !path.isAbsolute(v) && !v.includes(':') &&
        fs.existsSync(path.join(repo, v))) return path.join(repo, v);
    return v;
  };
  absolutize(cfg);
  if (!Array.isArray(cfg.parents)) cfg.parents = [{ name: 'chatbot' }, { name: 'agent' }];
  cfg.parents = cfg.parents.filter((x) => x.name !== GAP_PARENT.name).concat([GAP_PARENT]);
  if ('listen' in cfg) cfg.listen = `127.0.0.1:${gw.port}`;
  if ('data_dir' in cfg) cfg.data_dir = gw.dataDir;
  const file = path.join(tmp, 'litegate.json');
  await fsp.writeFile(file, JSON.stringify(cfg, null, 2));
  return file;
}

async function startGateway() {
  const args = [];
  if (gw.configFile) args.push('--config', gw.configFile);
  args.push('--listen', `127.0.0.1:${gw.port}`, '--data-dir', gw.dataDir);
  gw.starts += 1;
  const log = fs.createWriteStream(path.join(ARTIFACTS, `gateway-${gw.starts}.log`));
  const proc = spawn(BIN, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  let exited = null;
  proc.exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  gw.proc = proc;
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${BIN} exited at start (${JSON.stringify(exited)}); see ${log.path}`);
    try {
      const r = await fetch(`${gw.base}/healthz`);
      if (r.ok) return;
    } catch { /* not up yet */ }
    await sleep(50);
  }
  throw new Error(`${BIN} did not answer /healthz on ${gw.base} within 15 s`);
}

async function stopGateway(signal = 'SIGTERM') {
  const proc = gw.proc;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return null;
  proc.kill(signal);
  const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
  const r = await proc.exited;
  clearTimeout(t);
  gw.proc = null;
  return r;
}

/** Serve web-demo/ ourselves (only if the gateway does not serve it at /). */
function startStaticServer() {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };
  const root = path.join(repo, 'web-demo');
  const srv = http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    const f = path.join(root, p === '/' ? 'index.html' : path.normalize(p));
    if (!f.startsWith(root) || !fs.existsSync(f) || !fs.statSync(f).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[path.extname(f)] || 'application/octet-stream' });
    res.end(fs.readFileSync(f));
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

// ---- playing the model worker over HTTP -------------------------------------------------------

async function api(method, p, body) {
  const r = await fetch(gw.base + p, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return JSON.parse(text);
}

const publish = (session, event, data) => api('POST', `/v1/topics/chatbot/${session}/messages`, { event, data });

async function historyOf(session) {
  const all = [];
  let from = 0;
  for (;;) {
    const h = await api('GET', `/v1/topics/chatbot/${session}/messages?from=${from}&limit=1000`);
    all.push(...h.messages);
    if (h.messages.length === 0 || h.next <= from) return all;
    from = h.next;
  }
}

/** Wait until a prompt shows up in the session's log; returns its message. */
async function waitForPrompt(session, text, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const p = (await historyOf(session)).find((m) => m.event === 'prompt' && m.data && m.data.text === text);
      if (p) return p;
    } catch { /* topic not there yet */ }
    await sleep(50);
  }
  throw new Error(`prompt "${text}" never reached chatbot/${session}`);
}

const PROSE = ('litegate keeps every token of an answer in a durable log, one offset after another. ' +
  'The browser streams the log with EventSource, and every event carries its offset as its id. ' +
  'When the connection drops, the browser comes back with the last offset it saw and receives exactly ' +
  'what it missed: nothing lost, nothing repeated. A reload replays the conversation from offset zero, ' +
  'a second tab sees the same text, and a restarted gateway picks up every topic where it left off. ' +
  'Meanwhile the model keeps writing, because a dropped browser is not a cancel.').split(' ');

/** A deterministic answer of `n` tokens for `seed`: readable prose, starting at a seed-chosen word. */
function makeTokens(seed, n) {
  let x = 0;
  for (const c of String(seed)) x = (x * 31 + c.charCodeAt(0)) >>> 0;
  const start = x % 7;
  const out = [];
  for (let i = 0; i < n; i++) {
    const w = PROSE[(start + i) % PROSE.length];
    out.push(i === 0 ? w[0].toUpperCase() + w.slice(1) : ` ${w}`);
  }
  return out;
}

/** Plays the worker of one turn: posts the answer's tokens in order, one message each. */
class Worker {
  constructor(session, tokens) {
    this.session = session;
    this.tokens = tokens;
    this.next = 0;
  }

  get text() {
    return this.tokens.join('');
  }

  get sentText() {
    return this.tokens.slice(0, this.next).join('');
  }

  async post(n, gapMs = 15) {
    const end = Math.min(this.tokens.length, this.next + n);
    while (this.next < end) {
      await publish(this.session, 'token', this.tokens[this.next]);
      this.next += 1;
      if (gapMs) await sleep(gapMs);
    }
  }

  async rest(gapMs = 15) {
    await this.post(this.tokens.length, gapMs);
  }

  async end(reason = 'done') {
    await publish(this.session, 'end', { reason });
  }
}

// ---- the browser ------------------------------------------------------------------------------

let browser;
let tmpRoot;

const sessionId = (name) => `t-${name}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

function chatUrl(session) {
  const q = new URLSearchParams({ s: session });
  if (gw.pageBase !== gw.base) q.set('gateway', gw.base);
  return `${gw.pageBase}/?${q}`;
}

/** Records every change of the connection badge and of answer text in window.__rec. */
async function record(page) {
  await page.evaluate(() => {
    const rec = { states: [], snaps: [] };
    window.__rec = rec;
    const badge = document.querySelector('[data-testid="conn-state"]');
    rec.states.push(badge.textContent);
    new MutationObserver(() => rec.states.push(badge.textContent)).observe(badge, { childList: true, characterData: true, subtree: true });
    const msgs = document.querySelector('[data-testid="messages"]');
    new MutationObserver(() => {
      const a = [...document.querySelectorAll('[data-testid="answer-text"]')].pop();
      if (a && rec.snaps[rec.snaps.length - 1] !== a.textContent) rec.snaps.push(a.textContent);
    }).observe(msgs, { childList: true, characterData: true, subtree: true });
  });
}

async function openChat(context, session) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  page.on('console', (m) => { if (m.type() === 'error') console.error('page console:', m.text()); });
  await page.goto(chatUrl(session));
  await page.locator('[data-testid="conn-state"][data-state="live"]').waitFor({ timeout: 10000 });
  await record(page);
  return page;
}

async function sendPrompt(page, text) {
  await page.getByTestId('prompt-input').fill(text);
  await page.getByTestId('send').click();
}

const answerText = (page) => page.getByTestId('answer-text').last().textContent();

/** Wait until the last answer's text equals `expected` (and fail showing both if it never does). */
async function expectAnswer(page, expected, timeoutMs = 15000) {
  try {
    await page.waitForFunction((exp) => {
      const a = [...document.querySelectorAll('[data-testid="answer-text"]')].pop();
      return a && a.textContent === exp;
    }, expected, { timeout: timeoutMs, polling: 50 });
  } catch (e) {
    assert.equal(await answerText(page), expected, 'answer text on the page');
    throw e;
  }
}

/** Wait until the last answer shows at least `prefix` (tokens are still streaming). */
async function expectPrefix(page, prefix, timeoutMs = 15000) {
  await page.waitForFunction((p) => {
    const a = [...document.querySelectorAll('[data-testid="answer-text"]')].pop();
    return a && a.textContent.length >= p.length;
  }, prefix, { timeout: timeoutMs, polling: 20 });
  const t = await answerText(page);
  assert.ok(t.startsWith(prefix), `page text ${JSON.stringify(t)} should start with ${JSON.stringify(prefix)}`);
}

async function lastAnswer(page) {
  const a = page.getByTestId('answer').last();
  return { state: await a.getAttribute('data-state'), tokens: Number(await a.getAttribute('data-tokens')) };
}

async function badge(page) {
  const b = page.getByTestId('conn-state');
  return { state: await b.getAttribute('data-state'), text: await b.textContent() };
}

const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });

/** Start a turn: type the prompt in the page and wait for it in the log, as a worker would. */
async function startTurn(page, session, prompt, nTokens) {
  await sendPrompt(page, prompt);
  await waitForPrompt(session, prompt);
  await page.getByTestId('prompt-bubble').filter({ hasText: prompt }).waitFor();
  return new Worker(session, makeTokens(prompt, nTokens));
}

// ---- setup ------------------------------------------------------------------------------------

before(async () => {
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  assert.ok(fs.existsSync(BIN), `gateway binary ${BIN} not found: build it first, or set LITEGATE_BIN`);
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium`);
  tmpRoot = await fsp.mkdtemp(path.join(os.tmpdir(), 'litegate-browser-'));
  gw.port = await freePort();
  gw.base = `http://127.0.0.1:${gw.port}`;
  gw.dataDir = path.join(tmpRoot, 'data');
  await fsp.mkdir(gw.dataDir);
  gw.configFile = await makeConfig(tmpRoot);
  await startGateway();
  gw.pageBase = gw.base;
  const probe = await fetch(`${gw.base}/litegate.js`).catch(() => null);
  if (!probe || !probe.ok) {
    console.warn(`# the gateway does not serve web-demo/ at / (GET /litegate.js: ${probe && probe.status}); serving it from the test, cross-origin`);
    gw.staticServer = await startStaticServer();
    gw.pageBase = `http://127.0.0.1:${gw.staticServer.address().port}`;
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  if (browser) await browser.close();
  await stopGateway();
  if (gw.staticServer) gw.staticServer.close();
  if (tmpRoot) await fsp.rm(tmpRoot, { recursive: true, force: true });
});

async function newContext() {
  // Each context is a fresh profile (its own localStorage); the browser's user data dir is a
  // temporary one made by playwright for this run.
  return browser.newContext({ viewport: { width: 1100, height: 720 } });
}

// ---- tests ------------------------------------------------------------------------------------

test('a new chat streams the answer token by token, in order', async () => {
  const context = await newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${gw.pageBase}/${gw.pageBase !== gw.base ? `?gateway=${encodeURIComponent(gw.base)}` : ''}`);
    await page.getByTestId('new-chat').click();
    const session = new URL(page.url()).searchParams.get('s');
    assert.match(session, /^[0-9a-f]{16}$/, 'New chat puts a session id in the URL');
    await page.locator('[data-testid="conn-state"][data-state="live"]').waitFor();
    await record(page);

    const prompt = 'Explain how litegate resumes a stream';
    const w = await startTurn(page, session, prompt, 60);
    await w.post(25, 25);
    await expectPrefix(page, w.sentText);
    assert.equal((await badge(page)).text, 'live');
    await shot(page, 'live');
    await w.rest(15);
    await w.end();
    await expectAnswer(page, w.text);
    await page.locator('[data-testid="answer"][data-state="done"]').last().waitFor();
    assert.deepEqual(await lastAnswer(page), { state: 'done', tokens: 60 });

    // Every intermediate text the page showed was a prefix of the answer, growing: in order.
    const snaps = await page.evaluate(() => window.__rec.snaps);
    assert.ok(snaps.length >= 10, `the answer rendered progressively (${snaps.length} steps)`);
    let prev = -1;
    for (const s of snaps) {
      assert.ok(w.text.startsWith(s), `intermediate text ${JSON.stringify(s)} is a prefix of the answer`);
      assert.ok(s.length > prev, 'the text only grows');
      prev = s.length;
    }
    // The chat is listed, named after its prompt, and a reload returns to it.
    const item = page.locator(`[data-testid="chat-item"][data-id="${session}"]`);
    assert.equal(await item.textContent(), prompt);
    await shot(page, 'finished');
    await page.reload();
    await expectAnswer(page, w.text);
    assert.equal(new URL(page.url()).searchParams.get('s'), session);
    assert.equal(await page.getByTestId('prompt-bubble').first().textContent(), prompt);
  } finally {
    await context.close();
  }
});

test('the drop control cuts the stream mid-answer and it resumes exactly', async () => {
  const context = await newContext();
  try {
    const session = sessionId('drop');
    const page = await openChat(context, session);
    const w = await startTurn(page, session, 'Drop me mid-answer', 50);
    await w.post(15);
    await expectPrefix(page, w.sentText);
    const seen = Number(await page.getByTestId('last-offset').getAttribute('data-offset'));

    await page.getByTestId('drop').click(); // stays down for 1.5 s
    await page.locator('[data-testid="conn-state"][data-state="reconnecting"]').waitFor();
    await shot(page, 'reconnecting');
    await w.post(15, 10); // written while the page is away
    await page.locator('[data-testid="conn-state"][data-state="resumed"]').waitFor({ timeout: 10000 });
    assert.equal((await badge(page)).text, `resumed from offset ${seen + 1}`);
    await expectPrefix(page, w.sentText);
    await shot(page, 'resumed');
    await w.rest();
    await w.end();
    await expectAnswer(page, w.text);
    await page.locator('[data-testid="answer"][data-state="done"]').last().waitFor();
    assert.deepEqual(await lastAnswer(page), { state: 'done', tokens: 50 });
  } finally {
    await context.close();
  }
});

test('going offline mid-answer and back loses and repeats nothing', async () => {
  const context = await newContext();
  try {
    const session = sessionId('offline');
    const page = await openChat(context, session);
    const w = await startTurn(page, session, 'Go offline for a moment', 50);
    await w.post(15);
    await expectPrefix(page, w.sentText);
    const seen = Number(await page.getByTestId('last-offset').getAttribute('data-offset'));

    // Chromium's offline emulation fails new requests but leaves an open EventSource streaming;
    // the page's client treats the window's offline event as a drop, as on a real network loss.
    await context.setOffline(true);
    await page.locator('[data-testid="conn-state"][data-state="reconnecting"]').waitFor();
    await w.post(15, 10);
    await sleep(500);
    assert.ok(!(await answerText(page)).includes(w.tokens[20]), 'nothing streamed while offline');
    await context.setOffline(false);
    await page.locator('[data-testid="conn-state"][data-state="resumed"]').waitFor({ timeout: 10000 });
    assert.equal((await badge(page)).text, `resumed from offset ${seen + 1}`);
    await w.rest();
    await w.end();
    await expectAnswer(page, w.text);
    assert.deepEqual(await lastAnswer(page), { state: 'done', tokens: 50 });
  } finally {
    await context.close();
  }
});

test('a gateway restart mid-answer: the page resumes and shows exactly the answer', async () => {
  const context = await newContext();
  try {
    const session = sessionId('restart');
    const page = await openChat(context, session);
    const w = await startTurn(page, session, 'Survive a gateway restart', 60);
    await w.post(20);
    await expectPrefix(page, w.sentText);
    const seen = Number(await page.getByTestId('last-offset').getAttribute('data-offset'));

    const r = await stopGateway('SIGTERM');
    assert.deepEqual(r, { code: 0, signal: null }, 'SIGTERM exits 0');
    await page.locator('[data-testid="conn-state"][data-state="reconnecting"]').waitFor({ timeout: 10000 });
    await shot(page, 'restart-reconnecting');
    await startGateway();
    await w.post(20, 10);
    await page.locator('[data-testid="conn-state"][data-state="resumed"]').waitFor({ timeout: 15000 });
    assert.equal((await badge(page)).text, `resumed from offset ${seen + 1}`);
    await w.rest();
    await w.end();
    await expectAnswer(page, w.text);
    assert.deepEqual(await lastAnswer(page), { state: 'done', tokens: 60 });
    const states = await page.evaluate(() => window.__rec.states);
    assert.ok(states.some((s) => s.startsWith('reconnecting')), `saw reconnecting: ${states}`);
  } finally {
    await context.close();
  }
});

test('reloading mid-answer shows the whole conversation and goes on streaming', async () => {
  const context = await newContext();
  try {
    const session = sessionId('reload');
    const page = await openChat(context, session);
    const w1 = await startTurn(page, session, 'First question', 12);
    await w1.rest();
    await w1.end();
    await expectAnswer(page, w1.text);

    const w = await startTurn(page, session, 'Second question, reloaded', 50);
    await w.post(15);
    await expectPrefix(page, w.sentText);
    const reloading = page.reload();
    await w.post(15, 10); // while the page reloads
    await reloading;
    await w.rest();
    await w.end();
    await expectAnswer(page, w.text);
    const prompts = await page.getByTestId('prompt-bubble').allTextContents();
    assert.deepEqual(prompts, ['First question', 'Second question, reloaded']);
    const answers = await page.getByTestId('answer-text').allTextContents();
    assert.deepEqual(answers, [w1.text, w.text]);
    assert.deepEqual(await lastAnswer(page), { state: 'done', tokens: 50 });
  } finally {
    await context.close();
  }
});

test('two tabs on the same chat see the same text', async () => {
  const context = await newContext();
  try {
    const session = sessionId('tabs');
    const a = await openChat(context, session);
    const b = await openChat(context, session);
    const w = await startTurn(a, session, 'Two tabs, one answer', 40);
    await w.post(10);
    await Promise.all([expectPrefix(a, w.sentText), expectPrefix(b, w.sentText)]);
    await b.getByTestId('drop').click(); // one tab drops, the other does not
    await w.rest();
    await w.end();
    await Promise.all([expectAnswer(a, w.text), expectAnswer(b, w.text)]);
    assert.deepEqual(await b.getByTestId('prompt-bubble').allTextContents(), ['Two tabs, one answer']);
    assert.deepEqual(await lastAnswer(a), await lastAnswer(b));
  } finally {
    await context.close();
  }
});

test('Stop publishes a cancel event to the session topic', async () => {
  const context = await newContext();
  try {
    const session = sessionId('stop');
    const page = await openChat(context, session);
    const prompt = 'Stop this one';
    const w = await startTurn(page, session, prompt, 40);
    const promptMsg = await waitForPrompt(session, prompt);
    await w.post(10);
    await expectPrefix(page, w.sentText);
    assert.equal(await page.getByTestId('stop').isEnabled(), true, 'Stop is enabled while answering');
    await page.getByTestId('stop').click();

    let cancel;
    for (let i = 0; i < 100 && !cancel; i++) {
      cancel = (await historyOf(session)).find((m) => m.event === 'cancel');
      if (!cancel) await sleep(50);
    }
    assert.ok(cancel, 'a cancel message is in the topic');
    assert.ok(cancel.offset > promptMsg.offset, 'after the prompt');
    assert.deepEqual(cancel.data, { prompt_offset: promptMsg.offset });

    // The worker (played here) ends the turn as cancelled.
    await w.end('cancelled');
    await page.locator('[data-testid="answer"][data-state="cancelled"]').last().waitFor();
    assert.equal(await answerText(page), w.sentText);
    assert.equal(await page.getByTestId('answer-meta').last().textContent(), 'stopped');
    assert.equal(await page.getByTestId('stop').isDisabled(), true);
  } finally {
    await context.close();
  }
});

test('a chat deleted and re-created on the gateway resets the page to its new life', async () => {
  const context = await newContext();
  try {
    const session = sessionId('reset');
    const page = await openChat(context, session);
    const w1 = await startTurn(page, session, 'The old life of this chat', 30);
    await w1.rest(5);
    await w1.end();
    await expectAnswer(page, w1.text);

    // The topic goes away and starts over at offset 0 with fewer messages than the page has seen:
    // the gateway sends `reset` and the page must show the new conversation, not drop it as repeats.
    await api('DELETE', `/v1/topics/chatbot/${session}`);
    await publish(session, 'prompt', { text: 'New life' });
    const w = new Worker(session, makeTokens('New life', 8));
    await w.rest(5);
    await w.end();
    await expectAnswer(page, w.text);
    assert.deepEqual(await page.getByTestId('prompt-bubble').allTextContents(), ['New life']);
    assert.deepEqual(await page.getByTestId('answer-text').allTextContents(), [w.text]);
    assert.deepEqual(await lastAnswer(page), { state: 'done', tokens: 8 });
  } finally {
    await context.close();
  }
});

test('litegate.js on its own: gap, resume after drop(), publish and history', async () => {
  const context = await newContext();
  try {
    const page = await openChat(context, sessionId('client'));
    const topic = `${GAP_PARENT.name}/${sessionId('gap')}`;
    for (let i = 0; i < 20; i++) await api('POST', `/v1/topics/${topic}/messages`, { event: 'token', data: `t${i}` });

    // From 0 on a topic that keeps only its last 5 messages: a gap 0..14, then 15..19.
    await page.evaluate(async ({ topic, base }) => {
      const lg = await import('./litegate.js');
      const got = { msgs: [], gaps: [], states: [] };
      window.__client = got;
      window.__lg = lg;
      window.__sub = lg.subscribe(base, topic, {
        from: 0,
        events: ['token'],
        onMessage: (m) => got.msgs.push(m),
        onGap: (g) => got.gaps.push(g),
        onState: (s, info) => got.states.push([s, info]),
      });
    }, { topic, base: gw.pageBase === gw.base ? '' : gw.base });
    await page.waitForFunction(() => window.__client.msgs.length === 5);
    let got = await page.evaluate(() => window.__client);
    assert.deepEqual(got.gaps, [{ from: 0, to: 15 }]);
    assert.deepEqual(got.msgs.map((m) => [m.offset, m.event, m.data]),
      [15, 16, 17, 18, 19].map((o) => [o, 'token', `t${o}`]));
    assert.equal(await page.evaluate(() => window.__sub.lastOffset), 19);

    // drop(): down for 300 ms, then resumed after 19 with what was published meanwhile, once.
    await page.evaluate(() => window.__sub.drop(300));
    const ack = await page.evaluate((t) => window.__lg.publish('', t, 'token', 't20'), topic);
    assert.equal(ack.first_offset, 20);
    await page.waitForFunction(() => window.__client.msgs.length === 6);
    await page.evaluate((t) => window.__lg.publish('', t, 'token', 't21'), topic);
    await page.waitForFunction(() => window.__client.msgs.length === 7);
    await sleep(300);
    got = await page.evaluate(() => window.__client);
    assert.deepEqual(got.msgs.map((m) => m.offset), [15, 16, 17, 18, 19, 20, 21]);
    assert.deepEqual(got.states.map(([s]) => s), ['connecting', 'live', 'reconnecting', 'resumed']);
    assert.deepEqual(got.states[3][1], { from: 20, lastOffset: 19 });

    const h = await page.evaluate((t) => window.__lg.history('', t, { from: 0, limit: 3 }), topic);
    assert.deepEqual(h.messages.map((m) => m.offset), [17, 18, 19]); // 22 written, 5 kept
    assert.equal(h.next, 20);
    const err = await page.evaluate((t) => window.__lg.publish('', t, 'bad event!', 1).catch((e) => [e.name, e.code, e.status]), topic);
    assert.deepEqual(err, ['LitegateError', err[1], 400]);

    await page.evaluate(() => window.__sub.close());
    assert.equal(await page.evaluate(() => window.__sub.state), 'closed');
  } finally {
    await context.close();
  }
});
