/**
 * litegate.js - a small browser client for the litegate gateway (HTTP API v1).
 *
 * No dependencies, no build step: import it as an ES module.
 *
 *   import { subscribe, publish } from './litegate.js';
 *   const sub = subscribe('', 'chatbot/s1', {
 *     from: 0,
 *     events: ['prompt', 'token', 'end'],
 *     onMessage: (m) => console.log(m.offset, m.event, m.data),
 *     onState: (state, info) => console.log(state, info),
 *   });
 *   await publish('', 'chatbot/s1', 'prompt', { text: 'hello' });
 *
 * Streaming uses EventSource on GET /v1/topics/{parent}/{id}/events. Every message carries its topic
 * offset as the SSE id, so a dropped stream resumes exactly after the last message seen: the browser
 * sends Last-Event-ID on its own reconnects, and when this module opens a new EventSource itself
 * (after drop(), after the browser gave up, or after coming back online) it passes
 * ?last_event_id=<last offset seen>. Offsets at or below the last one seen are ignored, so a message
 * is never delivered twice to onMessage, and never out of order.
 *
 * @module litegate
 */

/**
 * A message of a topic, as delivered to {@link SubscribeOptions.onMessage}.
 * @typedef {object} LitegateMessage
 * @property {number} offset  the message's offset in its topic (0, 1, 2, ...)
 * @property {string} event   the event name (e.g. "token")
 * @property {*}      data    the message's data, parsed from JSON
 */

/**
 * Connection states reported to {@link SubscribeOptions.onState}:
 * - `"connecting"`: first connection under way;
 * - `"live"`: the first connection is open and streaming;
 * - `"reconnecting"`: the stream is down (network error, server restart, drop(), offline) and will
 *   come back on its own; info: `{reason, lastOffset}`;
 * - `"resumed"`: a reconnection is open and streaming again; info: `{from, lastOffset}` where `from`
 *   is the first offset asked for (lastOffset + 1) and `lastOffset` the last offset seen before;
 * - `"closed"`: close() was called.
 * @typedef {"connecting"|"live"|"reconnecting"|"resumed"|"closed"} LitegateState
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {number|"tail"} [from]  where the first connection starts: a first offset to send, or
 *   "tail" for new messages only. Omitted: from the topic's first retained message.
 * @property {string[]} [events]  the event names to receive. EventSource only hands out named
 *   events to listeners registered for that exact name, so list every event the application uses.
 *   Default `["message"]` (the gateway's default event name).
 * @property {(msg: LitegateMessage) => void} [onMessage]  called once per message, in offset order.
 * @property {(state: LitegateState, info: object) => void} [onState]  connection state changes.
 * @property {(info: {from: number, to: number}) => void} [onGap]  the start point was below the
 *   retained range: offsets from `from` to `to - 1` are gone; streaming goes on from `to`.
 * @property {(info: {from: number, first_offset: number, next_offset: number}) => void} [onReset]
 *   the topic was re-created (its end is below the start point asked for). The client forgets its
 *   last offset and the stream goes on from the topic's first retained message; an application
 *   should clear what it rendered from this topic.
 * @property {number} [minRetryMs=500]  first delay of this module's own reconnects (doubles each try)
 * @property {number} [maxRetryMs=5000]  largest delay between this module's own reconnects
 * @property {boolean} [watchOnline=true]  treat the window's offline/online events as a drop and
 *   an immediate reconnect.
 */

/**
 * The handle returned by {@link subscribe}.
 * @typedef {object} Subscription
 * @property {number} lastOffset  the last offset delivered to onMessage, or skipped by a gap
 *   (-1: none yet)
 * @property {LitegateState} state  the current connection state
 * @property {(pauseMs?: number) => void} drop  cut the stream now and resume after `pauseMs`
 *   (default 1000) from the last offset seen, as a flaky network would
 * @property {() => void} close  stop for good
 */

/** The gateway path of a topic, each part URL-encoded. */
function topicPath(topic) {
  const slash = topic.indexOf('/');
  if (slash < 1 || slash === topic.length - 1) throw new Error(`litegate: bad topic "${topic}" (want parent/id)`);
  return `/v1/topics/${encodeURIComponent(topic.slice(0, slash))}/${encodeURIComponent(topic.slice(slash + 1))}`;
}

/** `baseUrl` without a trailing slash ("" = this page's origin). */
function base(baseUrl) {
  return (baseUrl || '').replace(/\/+$/, '');
}

function parseData(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Stream a topic's messages, resuming after drops without losing or repeating any.
 *
 * @param {string} baseUrl  the gateway's origin, e.g. "http://127.0.0.1:8080"; "" for this page's
 * @param {string} topic    a lite topic, "parent/id", e.g. "chatbot/s1"
 * @param {SubscribeOptions} [opts]
 * @returns {Subscription}
 */
export function subscribe(baseUrl, topic, opts = {}) {
  const url = base(baseUrl) + topicPath(topic) + '/events';
  const names = new Set(['message', ...(opts.events || [])]);
  const minRetry = opts.minRetryMs ?? 500;
  const maxRetry = opts.maxRetryMs ?? 5000;
  const watchOnline = (opts.watchOnline ?? true) && typeof window !== 'undefined';

  let es = null;            // the current EventSource
  let opened = false;       // has any connection opened yet (first open = live, later = resumed)
  let down = false;         // are we between a failure and the next open
  let closed = false;
  let timer = null;         // pending reconnect of our own
  let retryMs = minRetry;
  let resumeFrom = null;    // lastOffset + 1 at the moment the stream went down
  let resetSeen = false;    // this EventSource got a reset: its URL's start point is stale

  const handle = {
    lastOffset: -1,
    state: 'connecting',
    drop,
    close,
  };

  function setState(state, info = {}) {
    handle.state = state;
    if (opts.onState) opts.onState(state, info);
  }

  /** The query string of a connection we open ourselves. */
  function startQuery() {
    if (handle.lastOffset >= 0) return `?last_event_id=${handle.lastOffset}`;
    if (opts.from === 'tail') return '?from=tail';
    if (Number.isInteger(opts.from)) return `?from=${opts.from}`;
    return '';
  }

  function onEvent(ev) {
    if (ev.target !== es) return; // a late event of a closed EventSource
    if (ev.lastEventId === '' || ev.lastEventId == null) return; // messages always carry their offset
    const offset = Number(ev.lastEventId);
    if (!Number.isSafeInteger(offset)) return;
    if (offset <= handle.lastOffset) return; // already delivered: a replay after a resume
    handle.lastOffset = offset;
    if (opts.onMessage) opts.onMessage({ offset, event: ev.type, data: parseData(ev.data) });
  }

  function onGap(ev) {
    if (ev.target !== es) return;
    const info = parseData(ev.data);
    // Offsets info.from .. info.to-1 are gone; the stream goes on at info.to. The gap event's id
    // is to-1, so count it as seen: a reconnect of ours then asks for info.to as the browser does.
    if (info && Number.isSafeInteger(info.to) && info.to - 1 > handle.lastOffset) handle.lastOffset = info.to - 1;
    if (opts.onGap) opts.onGap(info);
  }

  function onReset(ev) {
    if (ev.target !== es) return;
    const info = parseData(ev.data);
    // The topic's offsets started over (it expired or was deleted and re-created). The stream goes
    // on from the new first retained message, and the reset's empty id made EventSource forget its
    // last id; forget ours too so those messages pass the duplicate guard.
    handle.lastOffset = -1;
    resetSeen = true;
    if (opts.onReset) opts.onReset(info);
  }

  function onOpen(ev) {
    if (ev.target !== es) return;
    retryMs = minRetry;
    if (!opened) {
      opened = true;
      down = false;
      setState('live', { lastOffset: handle.lastOffset });
    } else {
      const from = resumeFrom ?? handle.lastOffset + 1;
      down = false;
      resumeFrom = null;
      setState('resumed', { from, lastOffset: from - 1 });
    }
  }

  function goneDown(reason) {
    if (!down) {
      down = true;
      resumeFrom = handle.lastOffset + 1;
    }
    setState('reconnecting', { reason, lastOffset: handle.lastOffset });
  }

  function onError(ev) {
    if (ev.target !== es) return;
    if (es.readyState === EventSource.CONNECTING && !resetSeen) {
      // The browser reconnects by itself, sending Last-Event-ID.
      goneDown('network');
      return;
    }
    // After a reset the browser would reconnect with no Last-Event-ID, so the start point in the
    // URL (perhaps an old ?last_event_id) would win: reconnect ourselves with a fresh one instead.
    // CLOSED: the browser gave up (an HTTP error such as 503 while the gateway shuts down, or it
    // judged retrying futile). Reconnect ourselves, with backoff.
    goneDown('closed');
    const wait = retryMs;
    retryMs = Math.min(retryMs * 2, maxRetry);
    reopen(wait, 'closed');
  }

  function open() {
    timer = null;
    if (closed) return;
    const src = new EventSource(url + startQuery());
    es = src;
    resetSeen = false;
    for (const name of names) src.addEventListener(name, onEvent);
    src.addEventListener('gap', onGap);
    src.addEventListener('reset', onReset);
    src.addEventListener('open', onOpen);
    src.addEventListener('error', onError);
  }

  function shut() {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (es) {
      es.close();
      es = null;
    }
  }

  /** Close the current stream and open a new one after `waitMs`. */
  function reopen(waitMs, reason, quiet = false) {
    shut();
    if (closed) return;
    if (!quiet) goneDown(reason);
    timer = setTimeout(open, waitMs);
  }

  function drop(pauseMs = 1000) {
    if (closed) return;
    reopen(pauseMs, 'dropped');
  }

  function close() {
    if (closed) return;
    closed = true;
    shut();
    if (watchOnline) {
      window.removeEventListener('offline', onOffline);
      window.removeEventListener('online', onOnline);
    }
    setState('closed', { lastOffset: handle.lastOffset });
  }

  function onOffline() {
    if (closed) return;
    shut();
    goneDown('offline');
  }

  function onOnline() {
    if (closed) return;
    if (es && es.readyState === EventSource.OPEN) return;
    retryMs = minRetry;
    reopen(0, 'online', true);
  }

  if (watchOnline) {
    window.addEventListener('offline', onOffline);
    window.addEventListener('online', onOnline);
  }
  setState('connecting', {});
  if (watchOnline && navigator.onLine === false) goneDown('offline');
  else open();
  return handle;
}

/**
 * Publish one message to a topic (POST /v1/topics/{parent}/{id}/messages, application/json).
 * Resolves once the gateway has made it durable.
 *
 * @param {string} baseUrl  the gateway's origin; "" for this page's
 * @param {string} topic    "parent/id"
 * @param {string} event    event name, 1 to 64 of [A-Za-z0-9_.:-]
 * @param {*} data          any JSON value
 * @returns {Promise<{topic: string, first_offset: number, last_offset: number, count: number}>}
 * @throws {LitegateError} on a network error or an error reply
 */
export async function publish(baseUrl, topic, event, data) {
  let res;
  try {
    res = await fetch(base(baseUrl) + topicPath(topic) + '/messages', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ event, data }),
    });
  } catch (err) {
    throw new LitegateError('network', String(err && err.message || err), 0);
  }
  return reply(res);
}

/**
 * Read a page of a topic's history (GET /v1/topics/{parent}/{id}/messages).
 *
 * @param {string} baseUrl
 * @param {string} topic  "parent/id"
 * @param {{from?: number, limit?: number}} [opts]  limit: default 100, at most 1000
 * @returns {Promise<{messages: Array<{offset: number, event: string, data: *, time: number}>, next: number}>}
 * @throws {LitegateError}
 */
export async function history(baseUrl, topic, opts = {}) {
  const q = new URLSearchParams();
  if (opts.from != null) q.set('from', String(opts.from));
  if (opts.limit != null) q.set('limit', String(opts.limit));
  const qs = q.toString();
  let res;
  try {
    res = await fetch(base(baseUrl) + topicPath(topic) + '/messages' + (qs ? `?${qs}` : ''));
  } catch (err) {
    throw new LitegateError('network', String(err && err.message || err), 0);
  }
  return reply(res);
}

/** An error reply of the gateway (`{"error":{"code","message"}}`) or a network failure. */
export class LitegateError extends Error {
  /**
   * @param {string} code     the gateway's error code, or "network"
   * @param {string} message
   * @param {number} status   HTTP status (0 for a network error)
   */
  constructor(code, message, status) {
    super(message);
    this.name = 'LitegateError';
    this.code = code;
    this.status = status;
  }
}

async function reply(res) {
  const text = await res.text();
  const body = text ? parseData(text) : null;
  if (!res.ok) {
    const e = body && body.error ? body.error : {};
    throw new LitegateError(e.code || `http_${res.status}`, e.message || res.statusText, res.status);
  }
  return body;
}
