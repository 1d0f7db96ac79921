// Real-browser tests of the chat demo (web-demo/) against the real litegate gateway and the real
// model worker.
//
// Debian's chromium, driven headless by playwright-core (no browser download). The main scenarios
// run the whole loop as a user sees it: the page posts a prompt, `litegate-worker` (demo model, a
// fixed seed, paced at a few tokens per second) pops it through the pull API and streams the answer
// back into the session topic. The demo model is deterministic, so `litegate-worker --demo-print`
// says beforehand exactly what text must end up on the page; the tests check that no token is lost
// or repeated (on the page at every step, and in the topic) across the drop control, going offline,
// a gateway restart (the worker keeps going and retries), a reload and a second tab, and that Stop
// ends the answer "cancelled" within 100 ms.
//
// A few tests need exact control of the token stream (a gap on a parent that keeps 5 messages, a
// chat deleted and re-created, litegate.js on its own): they run after the worker is stopped and
// play the worker themselves, POSTing known tokens.
//
// Two tests run the page over HTTPS with "tls": {"http2": true} on a gateway of their own (a
// self-signed certificate made with the openssl CLI, which Chromium is told to ignore): the page,
// its fetches and its EventSource must come over h2, a WebSocket beside them over HTTP/1.1 (the
// gateway does not offer WebSocket over h2), and a stream cut by the network (the browser's own
// reconnect, with Last-Event-ID) or by the drop control (litegate.js's, with ?last_event_id=) must
// bring every offset once, as seen on the wire through the DevTools protocol.
//
// Environment:
//   LITEGATE_BIN         gateway binary (default: <repo>/build/gateway/litegate)
//   LITEGATE_WORKER_BIN  worker binary (default: <repo>/build/worker/litegate-worker)
//   LITEGATE_WORKER_TPS  the worker's --tokens-per-second (default 20: slow enough to act mid-answer)
//   LITEGATE_WORKER_SEED the worker's --seed (default 4)
//   CHROMIUM             browser (default: /usr/bin/chromium)
//   LITEGATE_CONFIG      config file to start from (default: <repo>/conf/litegate.json if present)
//   ARTIFACTS            screenshots, gateway and worker logs (default: tests/browser/artifacts)
//
// Run: cd tests/browser && npm ci && node --test --test-concurrency=1 demo.test.mjs  (or ./run.sh)

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const BIN = path.resolve(process.env.LITEGATE_BIN || path.join(repo, 'build/gateway/litegate'));
const WORKER_BIN = path.resolve(process.env.LITEGATE_WORKER_BIN || path.join(repo, 'build/worker/litegate-worker'));
const WORKER_TPS = Number(process.env.LITEGATE_WORKER_TPS || 20);
const WORKER_SEED = Number(process.env.LITEGATE_WORKER_SEED || 4);
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

function newGateway(name) {
  return {
    name,         // names its logs in ARTIFACTS
    port: 0,
    dataDir: '',
    configFile: null,
    proc: null,
    starts: 0,
    base: '',    // http://127.0.0.1:PORT, the API (for the test and the worker)
    pageBase: '', // where the page is served (the gateway itself, unless it does not serve it)
    pageGateway: '', // the gateway the page talks to: '' for its own origin
    staticServer: null,
  };
}

// The gateway every helper below talks to: a plain-HTTP one; the HTTP/2 tests point `gw` at their
// own TLS gateway while they run.
let gw = newGateway('gateway');
const gateways = [gw]; // every gateway started, killed if the run ends without its hooks

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
 * the rest. `extra` replaces top-level fields.
 */
async function makeConfig(tmp, extra = {}) {
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
  Object.assign(cfg, extra);
  const file = path.join(tmp, 'litegate.json');
  await fsp.writeFile(file, JSON.stringify(cfg, null, 2));
  return file;
}

async function startGateway() {
  const args = [];
  if (gw.configFile) args.push('--config', gw.configFile);
  args.push('--listen', `127.0.0.1:${gw.port}`, '--data-dir', gw.dataDir);
  gw.starts += 1;
  const log = fs.createWriteStream(path.join(ARTIFACTS, `${gw.name}-${gw.starts}.log`));
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

// ---- the real model worker ---------------------------------------------------------------------

const wk = { proc: null, starts: 0, logPath: '' };

/**
 * Start `litegate-worker` (demo model, `tps` tokens a second) on the gateway and wait until its
 * group is defined.
 */
async function startWorker(tps = WORKER_TPS) {
  wk.starts += 1;
  wk.logPath = path.join(ARTIFACTS, `worker-${wk.starts}.log`);
  const log = fs.createWriteStream(wk.logPath);
  const args = ['--gateway', gw.base, '--tokens-per-second', String(tps), '--seed', String(WORKER_SEED)];
  const proc = spawn(WORKER_BIN, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  let exited = null;
  proc.exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  wk.proc = proc;
  // The worker defines its group (PUT /v1/groups/workers) once it reaches the gateway.
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${WORKER_BIN} exited at start (${JSON.stringify(exited)}); see ${wk.logPath}`);
    const r = await fetch(`${gw.base}/v1/groups/workers`).catch(() => null);
    if (r && r.ok) return;
    await sleep(50);
  }
  throw new Error(`${WORKER_BIN} did not define its group within 15 s; see ${wk.logPath}`);
}

async function stopWorker() {
  const proc = wk.proc;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return null;
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
  const r = await proc.exited;
  clearTimeout(t);
  wk.proc = null;
  return r;
}

function assertWorkerRunning() {
  const p = wk.proc;
  assert.ok(p && p.exitCode === null && p.signalCode === null, `the worker is running (see ${wk.logPath})`);
}

/** What the worker will answer to `prompt`: `litegate-worker --demo-print` with the same seed. */
function demoAnswer(prompt) {
  const out = execFileSync(WORKER_BIN, ['--seed', String(WORKER_SEED), '--demo-print', prompt], { encoding: 'utf8' });
  const text = out.endsWith('\n') ? out.slice(0, -1) : out;
  // The demo model cuts its text before every space (worker/demo_model.h).
  return { text, tokens: text.split(/(?= )/) };
}

/**
 * The turn that answers the prompt `text` in the session's topic: the prompt, the tokens and
 * cancels after it up to the `end` naming it, and what follows that end.
 */
async function turnInLog(session, text) {
  const all = await historyOf(session);
  const prompt = all.find((m) => m.event === 'prompt' && m.data && m.data.text === text);
  assert.ok(prompt, `prompt ${JSON.stringify(text)} is in chatbot/${session}`);
  const after = all.filter((m) => m.offset > prompt.offset);
  const e = after.findIndex((m) => m.event === 'end' && m.data && m.data.prompt_offset === prompt.offset);
  const turn = e < 0 ? after : after.slice(0, e + 1);
  return {
    prompt,
    tokens: turn.filter((m) => m.event === 'token'),
    cancels: turn.filter((m) => m.event === 'cancel'),
    end: e < 0 ? null : after[e],
    later: e < 0 ? [] : after.slice(e + 1),
  };
}

// ---- playing the model worker over HTTP (the scripted tests) ----------------------------------

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
  if (gw.pageGateway) q.set('gateway', gw.pageGateway);
  return `${gw.pageBase}/?${q}`;
}

/**
 * Records in window.__rec every change of the connection badge (its state, its text and the last
 * offset the page had then) and every text the last answer showed.
 */
async function record(page) {
  await page.evaluate(() => {
    const rec = { states: [], snaps: [] };
    window.__rec = rec;
    const badge = document.querySelector('[data-testid="conn-state"]');
    const offset = document.querySelector('[data-testid="last-offset"]');
    const note = () => {
      const s = { state: badge.dataset.state, text: badge.textContent, offset: Number(offset.dataset.offset ?? -1), t: Date.now() };
      const last = rec.states[rec.states.length - 1];
      if (!last || last.state !== s.state || last.text !== s.text) rec.states.push(s);
    };
    note();
    new MutationObserver(note).observe(badge, { childList: true, characterData: true, subtree: true, attributes: true });
    const msgs = document.querySelector('[data-testid="messages"]');
    new MutationObserver(() => {
      const a = [...document.querySelectorAll('[data-testid="answer-text"]')].pop();
      if (a && rec.snaps[rec.snaps.length - 1] !== a.textContent) rec.snaps.push(a.textContent);
    }).observe(msgs, { childList: true, characterData: true, subtree: true });
  });
}

const recStates = (page) => page.evaluate(() => window.__rec.states);

/**
 * Every text the last answer showed since record() was a prefix of `expected`, each longer than the
 * one before: the tokens arrived in order, none twice, even across drops. Returns the step count.
 */
async function checkProgress(page, expected) {
  const snaps = await page.evaluate(() => window.__rec.snaps);
  let prev = -1;
  for (const s of snaps) {
    assert.ok(expected.startsWith(s), `the page showed ${JSON.stringify(s)}, not a prefix of the answer ${JSON.stringify(expected)}`);
    assert.ok(s.length > prev, 'the answer text only grows');
    prev = s.length;
  }
  return snaps.length;
}

/**
 * The badge went to reconnecting after record() (at entry `since` or later) and then to
 * "resumed from offset N", N being one past the last offset the page had when it went down.
 * Returns {down, up}: the two recorded states.
 */
async function expectResumed(page, since = 0, timeoutMs = 15000) {
  await page.locator('[data-testid="conn-state"][data-state="resumed"]').waitFor({ timeout: timeoutMs });
  const states = (await recStates(page)).slice(since);
  const d = states.findIndex((s) => s.state === 'reconnecting');
  assert.ok(d >= 0, `the badge showed reconnecting: ${JSON.stringify(states)}`);
  const up = states.slice(d).find((s) => s.state === 'resumed');
  assert.ok(up, `then resumed: ${JSON.stringify(states)}`);
  assert.equal(up.text, `resumed from offset ${states[d].offset + 1}`, 'the badge names the offset it resumed from');
  return { down: states[d], up };
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

/**
 * Wait until the last answer's text equals `expected` (and fail showing both if it never does).
 * With `growing`, fail as soon as the text is not a prefix of `expected` (a token lost or repeated)
 * instead of waiting out the timeout.
 */
async function expectAnswer(page, expected, timeoutMs = 15000, growing = false) {
  try {
    await page.waitForFunction(([exp, g]) => {
      const a = [...document.querySelectorAll('[data-testid="answer-text"]')].pop();
      return a && (a.textContent === exp || (g && !exp.startsWith(a.textContent)));
    }, [expected, growing], { timeout: timeoutMs, polling: 50 });
  } catch (e) {
    assert.equal(await answerText(page), expected, 'answer text on the page');
    throw e;
  }
  assert.equal(await answerText(page), expected, 'answer text on the page');
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

/** Wait until the last answer has at least `n` tokens on the page; returns its text then. */
async function waitTokens(page, n, timeoutMs = 15000) {
  await page.waitForFunction((k) => {
    const a = [...document.querySelectorAll('[data-testid="answer"]')].pop();
    return a && Number(a.dataset.tokens) >= k;
  }, n, { timeout: timeoutMs, polling: 20 });
  return answerText(page);
}

/**
 * The turn answering `prompt` is complete and exact: the page shows the demo model's answer
 * (`exp`, from demoAnswer) with its token count, done, and the topic holds each token once, in
 * order, then `end` {"reason":"done"}.
 */
async function expectDone(page, session, prompt, exp, timeoutMs = 20000) {
  await expectAnswer(page, exp.text, timeoutMs, true);
  await page.locator('[data-testid="answer"][data-state="done"]').last().waitFor({ timeout: timeoutMs });
  assert.deepEqual(await lastAnswer(page), { state: 'done', tokens: exp.tokens.length });
  const t = await turnInLog(session, prompt);
  assert.deepEqual(t.tokens.map((m) => m.data), exp.tokens, 'the topic holds each token of the answer once, in order');
  assert.deepEqual(t.end && t.end.data, { reason: 'done', prompt_offset: t.prompt.offset });
  return t;
}

/** Type a prompt for the real worker and wait for its answer to start on the page. */
async function ask(page, prompt, firstTokens = 1) {
  const exp = demoAnswer(prompt);
  assert.ok(exp.tokens.length >= 30, `the demo answer to ${JSON.stringify(prompt)} is long enough to act mid-answer (${exp.tokens.length} tokens)`);
  await sendPrompt(page, prompt);
  await page.getByTestId('prompt-bubble').filter({ hasText: prompt }).waitFor();
  await waitTokens(page, firstTokens);
  return exp;
}

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
    gw.pageGateway = gw.base;
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

// If the run ends without the hooks above (an uncaught error, process.exit), kill the worker and
// the gateway rather than leave them running.
process.on('exit', () => {
  for (const p of [wk.proc, ...gateways.map((g) => g.proc)]) {
    if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
});

async function newContext(options = {}) {
  // Each context is a fresh profile (its own localStorage); the browser's user data dir is a
  // temporary one made by playwright for this run.
  return browser.newContext({ viewport: { width: 1100, height: 720 }, ...options });
}

// ---- tests ------------------------------------------------------------------------------------

describe('with the real model worker', () => {
  before(async () => {
    assert.ok(fs.existsSync(WORKER_BIN), `worker binary ${WORKER_BIN} not found: build it first, or set LITEGATE_WORKER_BIN`);
    await startWorker();
  });

  after(async () => {
    // The scripted tests below post prompts the worker must not answer.
    const r = await stopWorker();
    if (r) assert.deepEqual(r, { code: 0, signal: null }, `the worker exits 0 on SIGTERM (see ${wk.logPath})`);
  });

  test('a new chat streams the answer token by token, in order', async () => {
    const context = await newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${gw.pageBase}/${gw.pageGateway ? `?gateway=${encodeURIComponent(gw.pageGateway)}` : ''}`);
      await page.getByTestId('new-chat').click();
      const session = new URL(page.url()).searchParams.get('s');
      assert.match(session, /^[0-9a-f]{16}$/, 'New chat puts a session id in the URL');
      await page.locator('[data-testid="conn-state"][data-state="live"]').waitFor();
      await record(page);

      const prompt = 'How does litegate resume a stream?';
      const exp = await ask(page, prompt, 8);
      assert.ok(exp.text.startsWith(await answerText(page)), 'the first tokens are the start of the answer');
      assert.equal((await lastAnswer(page)).state, 'streaming');
      assert.equal((await badge(page)).text, 'live');
      await shot(page, 'live');
      await expectDone(page, session, prompt, exp);
      const steps = await checkProgress(page, exp.text);
      assert.ok(steps >= exp.tokens.length / 2, `the answer rendered progressively (${steps} steps for ${exp.tokens.length} tokens)`);

      // The chat is listed, named after its prompt, and a reload returns to it.
      const item = page.locator(`[data-testid="chat-item"][data-id="${session}"]`);
      assert.equal(await item.textContent(), prompt);
      await shot(page, 'finished');
      await page.reload();
      await expectAnswer(page, exp.text);
      assert.equal(new URL(page.url()).searchParams.get('s'), session);
      assert.equal(await page.getByTestId('prompt-bubble').first().textContent(), prompt);
    } finally {
      await context.close();
    }
  });

  test('the drop control cuts the stream mid-answer and it resumes exactly', async (t) => {
    const context = await newContext();
    try {
      const session = sessionId('drop');
      const page = await openChat(context, session);
      const prompt = 'What happens when the connection drops?';
      const exp = await ask(page, prompt, 8);

      await page.getByTestId('drop').click(); // stays down for 1.5 s
      await page.locator('[data-testid="conn-state"][data-state="reconnecting"]').waitFor();
      await shot(page, 'reconnecting');
      const { down, up } = await expectResumed(page);
      assert.ok(down.offset < exp.tokens.length, `dropped mid-answer (at offset ${down.offset})`);
      // The worker went on writing while the page was away (a dropped browser is not a cancel).
      const turn = await turnInLog(session, prompt);
      const meanwhile = turn.tokens.filter((m) => m.offset > down.offset && m.time <= up.t);
      assert.ok(meanwhile.length > 0, 'tokens were written while the page was away');
      t.diagnostic(`dropped after offset ${down.offset}, ${up.text}, ${meanwhile.length} tokens written meanwhile`);
      await shot(page, 'resumed');
      await expectDone(page, session, prompt, exp);
      await checkProgress(page, exp.text);
      assert.equal((await badge(page)).text, up.text, 'the badge still shows where it resumed from');
    } finally {
      await context.close();
    }
  });

  test('going offline mid-answer and back loses and repeats nothing', async (t) => {
    const context = await newContext();
    try {
      const session = sessionId('offline');
      const page = await openChat(context, session);
      const prompt = 'Can streaming survive going offline?';
      const exp = await ask(page, prompt, 8);

      // Chromium's offline emulation fails new requests but leaves an open EventSource streaming;
      // the page's client treats the window's offline event as a drop, as on a real network loss.
      await context.setOffline(true);
      await page.locator('[data-testid="conn-state"][data-state="reconnecting"]').waitFor();
      assert.equal((await badge(page)).text, 'offline · reconnecting…');
      const shown = await answerText(page);
      await shot(page, 'offline');
      await sleep(800);
      assert.equal(await answerText(page), shown, 'nothing streamed while offline');
      await context.setOffline(false);
      const { down, up } = await expectResumed(page);
      assert.ok(down.offset < exp.tokens.length, `went offline mid-answer (at offset ${down.offset})`);
      t.diagnostic(`offline after offset ${down.offset}, ${up.text}`);
      await expectDone(page, session, prompt, exp);
      await checkProgress(page, exp.text);
    } finally {
      await context.close();
    }
  });

  test('a gateway restart mid-answer: the worker retries, the page resumes, the answer is exact', async (t) => {
    const context = await newContext();
    try {
      const session = sessionId('restart');
      const page = await openChat(context, session);
      const prompt = 'Will a gateway restart lose tokens?';
      const exp = await ask(page, prompt, 8);
      const workerPid = wk.proc.pid;

      const r = await stopGateway('SIGTERM');
      assert.deepEqual(r, { code: 0, signal: null }, 'SIGTERM exits 0');
      await page.locator('[data-testid="conn-state"][data-state="reconnecting"]').waitFor({ timeout: 10000 });
      await shot(page, 'restart-reconnecting');
      const stoppedWith = (await lastAnswer(page)).tokens;
      assert.ok(stoppedWith < exp.tokens.length, `the answer was not complete when the gateway stopped (${stoppedWith} tokens)`);
      const restartedAt = Date.now(); // nothing can be stored between the stop and this
      await startGateway();
      const { down, up } = await expectResumed(page, 0, 20000);
      assert.ok(down.offset < exp.tokens.length, `went down mid-answer (at offset ${down.offset})`);
      if ((await lastAnswer(page)).state === 'streaming') await shot(page, 'restart-resumed');
      const turn = await expectDone(page, session, prompt, exp);
      await checkProgress(page, exp.text);
      // The same worker process went on with the answer once the gateway was back.
      assertWorkerRunning();
      assert.equal(wk.proc.pid, workerPid);
      const after = turn.tokens.filter((m) => m.time >= restartedAt).length;
      assert.ok(after > 0, 'the worker wrote tokens after the restart');
      t.diagnostic(`gateway stopped after offset ${down.offset} (${stoppedWith} tokens on the page), ${up.text}; ${after} of ${exp.tokens.length} tokens written after the restart`);
      await shot(page, 'restart-finished');
    } finally {
      await context.close();
    }
  });

  test('reloading mid-answer shows the whole conversation and goes on streaming', async () => {
    const context = await newContext();
    try {
      const session = sessionId('reload');
      const page = await openChat(context, session);
      const p1 = 'First question: what is a topic?';
      const exp1 = await ask(page, p1);
      await expectDone(page, session, p1, exp1);

      const p2 = 'Second question: why reload?';
      const exp2 = await ask(page, p2, 8);
      await page.reload();
      await page.getByTestId('prompt-bubble').nth(1).waitFor();
      await record(page);
      // Back before the answer ended: it goes on streaming into the reloaded page.
      await page.locator('[data-testid="answer"]').nth(1).and(page.locator(':not([data-tokens="0"])')).waitFor();
      assert.equal((await lastAnswer(page)).state, 'streaming', 'the reloaded page shows the answer still streaming');
      await expectDone(page, session, p2, exp2);
      await checkProgress(page, exp2.text);
      assert.deepEqual(await page.getByTestId('prompt-bubble').allTextContents(), [p1, p2]);
      assert.deepEqual(await page.getByTestId('answer-text').allTextContents(), [exp1.text, exp2.text]);
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
      const prompt = 'Do two tabs show the same answer?';
      const exp = await ask(a, prompt, 6);
      await waitTokens(b, 6);
      await b.getByTestId('drop').click(); // one tab drops, the other does not
      await expectDone(a, session, prompt, exp);
      await expectAnswer(b, exp.text);
      await checkProgress(a, exp.text);
      await checkProgress(b, exp.text);
      await expectResumed(b);
      assert.equal((await badge(a)).text, 'live', 'the other tab never dropped');
      assert.deepEqual(await b.getByTestId('prompt-bubble').allTextContents(), [prompt]);
      assert.deepEqual(await lastAnswer(b), { state: 'done', tokens: exp.tokens.length });
    } finally {
      await context.close();
    }
  });

  test('Stop: the worker ends the answer "cancelled" within 100 ms, and nothing comes after', async (tc) => {
    const context = await newContext();
    try {
      const session = sessionId('stop');
      const page = await openChat(context, session);
      const prompt = 'Write a long story about durable logs';
      const exp = await ask(page, prompt, 8);
      assert.equal(await page.getByTestId('stop').isEnabled(), true, 'Stop is enabled while answering');
      await page.getByTestId('stop').click();

      await page.locator('[data-testid="answer"][data-state="cancelled"]').last().waitFor({ timeout: 5000 });
      assert.equal(await page.getByTestId('answer-meta').last().textContent(), 'stopped');
      assert.equal(await page.getByTestId('stop').isDisabled(), true);
      const shown = await answerText(page);
      await shot(page, 'stopped');

      // The topic: the page's cancel names the prompt; the worker's end names it too, came within
      // 100 ms of the cancel (store times), and no token was stored more than 100 ms after the
      // cancel nor after the end.
      const t = await turnInLog(session, prompt);
      assert.equal(t.cancels.length, 1, 'one cancel');
      const cancel = t.cancels[0];
      assert.deepEqual(cancel.data, { prompt_offset: t.prompt.offset });
      assert.ok(t.end, 'the worker ended the turn');
      assert.deepEqual(t.end.data, { reason: 'cancelled', prompt_offset: t.prompt.offset });
      assert.ok(t.end.offset > cancel.offset, 'the end comes after the cancel');
      assert.ok(t.end.time - cancel.time <= 100, `the end came ${t.end.time - cancel.time} ms after the cancel`);
      for (const m of t.tokens.filter((x) => x.offset > cancel.offset)) {
        assert.ok(m.time - cancel.time <= 100, `token at ${m.offset} came ${m.time - cancel.time} ms after the cancel`);
      }
      assert.ok(t.tokens.length < exp.tokens.length, 'the answer was cut short');
      tc.diagnostic(`cancel at offset ${cancel.offset}, end at ${t.end.offset} ${t.end.time - cancel.time} ms later, ` +
        `${t.tokens.filter((x) => x.offset > cancel.offset).length} token(s) between; ${t.tokens.length} of ${exp.tokens.length} tokens sent`);
      assert.deepEqual(t.tokens.map((m) => m.data), exp.tokens.slice(0, t.tokens.length), 'what was sent is the start of the answer');
      assert.equal(shown, t.tokens.map((m) => m.data).join(''), 'the page shows exactly the tokens sent');
      assert.equal((await lastAnswer(page)).tokens, t.tokens.length);

      // Nothing after the end, in the topic or on the page, a while later.
      await sleep(500);
      assert.deepEqual((await turnInLog(session, prompt)).later, [], 'no message after the end');
      assert.equal(await answerText(page), shown, 'no token on the page after the end');
      assert.equal((await lastAnswer(page)).state, 'cancelled');

      // The worker is free again: the next prompt is answered in full.
      const next = 'And a short one after the stop';
      const expNext = await ask(page, next);
      await expectDone(page, session, next, expNext);
    } finally {
      await context.close();
    }
  });
});

describe('with a scripted token stream', () => {
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
      }, { topic, base: gw.pageGateway });
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
});

// ---- over HTTP/2 --------------------------------------------------------------------------------

/** A self-signed certificate for 127.0.0.1, made with the openssl CLI (as test_tls.py does). */
function makeCert(dir) {
  const cert = path.join(dir, 'gw.crt');
  const key = path.join(dir, 'gw.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/**
 * A loopback TCP relay to the gateway on `port`. With `tlsOptions` it takes plain TCP and speaks
 * TLS to the gateway (so that the worker and the test's own requests, plain HTTP, reach a TLS-only
 * gateway); without, it passes the bytes as they are (the browser's TLS goes through untouched).
 * cut() resets every connection it carries, as a network failure would.
 */
function relay(port, tlsOptions = null) {
  const sockets = new Set();
  const srv = net.createServer((client) => {
    const up = tlsOptions ? tls.connect({ host: '127.0.0.1', port, ...tlsOptions }) : net.connect(port, '127.0.0.1');
    const end = () => {
      for (const s of [client, up]) {
        s.destroy();
        sockets.delete(s);
      }
    };
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(up);
    up.pipe(client);
  });
  srv.cut = () => {
    for (const s of sockets) {
      if (s instanceof tls.TLSSocket) s.destroy();
      else s.resetAndDestroy(); // RST, as a failing network
    }
  };
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

/**
 * Open a chat page watched through the DevTools protocol: the protocol of every response ("h2",
 * "http/1.1"), every message its EventSources received on the wire (each one's id is its topic
 * offset, before litegate.js drops any offset it has seen) and the status of every WebSocket
 * handshake (101 is HTTP/1.1; WebSocket over h2, RFC 8441, would answer 200).
 */
async function openWatchedChat(context, session) {
  const page = await context.newPage();
  const wire = { responses: [], events: [], wsHandshakes: [] };
  const cdp = await context.newCDPSession(page);
  cdp.on('Network.responseReceived', (e) => wire.responses.push({
    requestId: e.requestId, url: e.response.url, type: e.type, protocol: e.response.protocol,
  }));
  cdp.on('Network.eventSourceMessageReceived', (e) => wire.events.push({ requestId: e.requestId, event: e.eventName, id: e.eventId }));
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => wire.wsHandshakes.push(e.response.status));
  await cdp.send('Network.enable');
  page.on('pageerror', (e) => console.error('page error:', e));
  page.on('console', (m) => { if (m.type() === 'error') console.error('page console:', m.text()); });
  await page.goto(chatUrl(session));
  await page.locator('[data-testid="conn-state"][data-state="live"]').waitFor({ timeout: 10000 });
  await record(page);
  return { page, wire };
}

/** The page's event streams so far: the protocol and the offsets each got on the wire, in order. */
function wireStreams(wire) {
  return wire.responses.filter((r) => r.type === 'EventSource').map((r) => ({
    protocol: r.protocol,
    url: r.url,
    offsets: wire.events.filter((e) => e.requestId === r.requestId && /^\d+$/.test(e.id)).map((e) => Number(e.id)),
  }));
}

/**
 * No offset reached the page twice, whatever stream brought it: each stream after the first starts
 * right after the last offset the page had (a reconnect with Last-Event-ID or ?last_event_id=).
 */
function checkWireOnce(wire) {
  const streams = wireStreams(wire);
  const summary = JSON.stringify(streams.map((s) => ({ url: s.url, offsets: s.offsets.length ? [s.offsets[0], s.offsets.at(-1)] : [] })));
  let last = -1;
  for (const [i, s] of streams.entries()) {
    if (i > 0 && s.offsets.length) {
      assert.equal(s.offsets[0], last + 1, `event stream ${i + 1} resumed at offset ${s.offsets[0]}, not right after ${last}: ` +
        `a reconnect's start point (Last-Event-ID over h2?) did not reach the gateway; streams (first, last offset): ${summary}`);
    }
    for (const o of s.offsets) {
      assert.ok(o > last, `offset ${o} reached the page again after ${last}; streams: ${summary}`);
      last = o;
    }
  }
  return streams;
}

/** Open a WebSocket to the page's own origin, ping, and return the answer. */
const wsPing = (page) => page.evaluate(() => new Promise((resolve, reject) => {
  const ws = new WebSocket(`wss://${location.host}/v1/ws`);
  const timer = setTimeout(() => reject(new Error('no answer to a ping within 5 s')), 5000);
  ws.onopen = () => ws.send(JSON.stringify({ op: 'ping', req: 1 }));
  ws.onmessage = (e) => {
    clearTimeout(timer);
    ws.close();
    resolve(JSON.parse(e.data));
  };
  ws.onerror = () => {
    clearTimeout(timer);
    reject(new Error('the WebSocket failed'));
  };
}));

// The page over HTTPS with "tls": {"http2": true}: Chromium picks h2 by ALPN for the page, its
// scripts, its fetches and its EventSource. The gateway is its own (TLS, its own data dir) and so
// is the worker, which (like the test's own requests) reaches it through a plain-to-TLS relay; the
// browser reaches it through a relay that can cut its connections.
describe('over HTTP/2 (TLS, "http2": true)', () => {
  const H2_WORKER_TPS = 12; // two drops fit in one answer
  let plain;
  let apiRelay;
  let pageRelay;
  let servesPage = false; // the page must come from the gateway itself, over its h2

  before(async () => {
    assert.ok(fs.existsSync(WORKER_BIN), `worker binary ${WORKER_BIN} not found: build it first, or set LITEGATE_WORKER_BIN`);
    const dir = path.join(tmpRoot, 'h2');
    await fsp.mkdir(path.join(dir, 'data'), { recursive: true });
    const { cert, key } = makeCert(dir);
    plain = gw;
    gw = newGateway('gateway-h2');
    gateways.push(gw);
    gw.port = await freePort();
    gw.dataDir = path.join(dir, 'data');
    apiRelay = await relay(gw.port, { ca: fs.readFileSync(cert), ALPNProtocols: ['http/1.1'] });
    pageRelay = await relay(gw.port);
    gw.base = `http://127.0.0.1:${apiRelay.address().port}`;
    gw.pageBase = `https://127.0.0.1:${pageRelay.address().port}`;
    // A short retry: the browser's own reconnect after a network cut comes quickly.
    gw.configFile = await makeConfig(dir, { tls: { cert, key, http2: true }, sse_retry_ms: 300 });
    await startGateway();
    const probe = await fetch(`${gw.base}/litegate.js`).catch(() => null);
    servesPage = !!(probe && probe.ok);
    if (servesPage) await startWorker(H2_WORKER_TPS);
  });

  after(async () => {
    try {
      const r = await stopWorker();
      if (r) assert.deepEqual(r, { code: 0, signal: null }, `the worker exits 0 on SIGTERM (see ${wk.logPath})`);
    } finally {
      await stopGateway();
      for (const r of [apiRelay, pageRelay]) {
        if (!r) continue;
        r.cut();
        r.close();
      }
      if (plain) gw = plain;
    }
  });

  test('the page, its event stream and an answer come over h2; a WebSocket beside them uses HTTP/1.1', async (t) => {
    if (!servesPage) return t.skip('the gateway does not serve web-demo/ (static_root)');
    const context = await newContext({ ignoreHTTPSErrors: true });
    try {
      const session = sessionId('h2');
      const { page, wire } = await openWatchedChat(context, session);
      const prompt = 'Does HTTP/2 carry the answer?';
      const exp = await ask(page, prompt);
      await expectDone(page, session, prompt, exp);
      await checkProgress(page, exp.text);

      // The page, its scripts and style, the prompt's POST (a fetch) and the event stream: h2.
      const nav = await page.evaluate(() => performance.getEntriesByType('navigation').map((e) => e.nextHopProtocol));
      assert.deepEqual(nav, ['h2'], 'the page came over h2');
      const res = await page.evaluate(() => performance.getEntriesByType('resource')
        .map((e) => ({ name: e.name, type: e.initiatorType, protocol: e.nextHopProtocol })));
      for (const r of res) assert.equal(r.protocol, 'h2', `${r.name} (${r.type}) came over h2`);
      for (const f of ['/app.js', '/litegate.js', '/style.css']) {
        assert.ok(res.some((r) => new URL(r.name).pathname === f), `${f} was loaded: ${JSON.stringify(res)}`);
      }
      assert.ok(res.some((r) => r.type === 'fetch' && r.name.endsWith(`/v1/topics/chatbot/${session}/messages`)),
        `the prompt was posted with fetch: ${JSON.stringify(res)}`);
      const streams = checkWireOnce(wire);
      assert.deepEqual(streams.map((s) => s.protocol), ['h2'], 'one event stream, over h2');
      assert.equal(streams[0].offsets.length, exp.tokens.length + 2, 'the prompt, every token and the end reached the page once');

      // The gateway does not offer WebSocket over h2 (h2settings.c), so Chromium opens it on a
      // connection of its own, HTTP/1.1: its handshake is a 101.
      assert.deepEqual(await wsPing(page), { type: 'pong', req: 1 });
      assert.deepEqual(wire.wsHandshakes, [101], 'the WebSocket handshake was HTTP/1.1 (101 Switching Protocols)');
    } finally {
      await context.close();
    }
  });

  test('dropped mid-answer over h2, by a network cut and by the drop control: every token once', async (t) => {
    if (!servesPage) return t.skip('the gateway does not serve web-demo/ (static_root)');
    const context = await newContext({ ignoreHTTPSErrors: true });
    try {
      const session = sessionId('h2drop');
      const { page, wire } = await openWatchedChat(context, session);
      const prompt = 'Does a stream over HTTP/2 survive two drops?';
      const exp = await ask(page, prompt, 5);

      // A network cut: the browser's EventSource reconnects by itself, with Last-Event-ID.
      pageRelay.cut();
      await page.locator('[data-testid="conn-state"][data-state="reconnecting"]').waitFor();
      const cut = await expectResumed(page);
      assert.ok(cut.down.offset < exp.tokens.length, `cut mid-answer (at offset ${cut.down.offset})`);
      await waitTokens(page, (await lastAnswer(page)).tokens + 2);

      // The drop control: litegate.js opens a new EventSource with ?last_event_id=.
      const since = (await recStates(page)).length;
      await page.getByTestId('drop').click();
      await page.locator('[data-testid="conn-state"][data-state="reconnecting"]').waitFor();
      const drop = await expectResumed(page, since);
      assert.ok(drop.down.offset < exp.tokens.length, `dropped mid-answer (at offset ${drop.down.offset})`);
      t.diagnostic(`cut after offset ${cut.down.offset} (${cut.up.text}), dropped after ${drop.down.offset} (${drop.up.text})`);

      await expectDone(page, session, prompt, exp);
      await checkProgress(page, exp.text);
      const streams = checkWireOnce(wire);
      assert.deepEqual(streams.map((s) => s.protocol), ['h2', 'h2', 'h2'], 'three event streams, each over h2');
    } finally {
      await context.close();
    }
  });
});
