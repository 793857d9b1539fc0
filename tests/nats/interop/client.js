#!/usr/bin/env node
// SPDX-License-Identifier: BSL-1.0
// A nats.js user's view of tenorite's kv service (ADR-32 services, JSON mode), with nothing but
// @nats-io/transport-node and @nats-io/services:
//   (a) discovery: ping/info/stats for all services, for the name "kv", for the name and the id;
//       exactly one instance answers each, and every field the ADR defines is checked;
//   (b) the endpoint: set, get, del and the error replies of the JSON contract (see service.js),
//       read with ServiceError.toServiceError as a nats.js caller reads them;
//   (c) the stats again: the requests, errors, last error and processing times of (b).
// Prints one line per check; exits 1 on the first failure, 2 on bad usage; bounded (25 s).
//
// usage: node client.js <nats-url> <subject> [--reference]
//   --reference   the peer is nats.js's own service (service.js, the self-check): accept the
//                 documented ways nats.js 3.0.0-25 departs from the contract (see REFERENCE
//                 below), each reported on a line starting with "relaxed". Never for tenorite.
"use strict";

const { connect } = require("@nats-io/transport-node");
const { Svcm, ServiceError, ServiceErrorHeader, ServiceErrorCodeHeader } = require("@nats-io/services");

const args = process.argv.slice(2);
const reference = args.includes("--reference");
const [url, subject] = args.filter((a) => a !== "--reference");
if (!url || !subject || args.some((a) => a.startsWith("--") && a !== "--reference")) {
  process.stderr.write("usage: node client.js <nats-url> <subject> [--reference]\n");
  process.exit(2);
}

const NAME = "kv";
const VERSION = "1.0.0";
const QUEUE = "q";
const REQUEST_TIMEOUT_MS = 2000;
const OVERALL_TIMEOUT_MS = 25000;

// What nats.js 3.0.0-25's own service does differently (service.js with --reference):
//   - num_errors and last_error count only errors thrown by a handler; respondError() is not
//     counted, and last_error is absent (not "") while nothing was counted;
//   - processing_time is measured with Date.now(): whole milliseconds, often 0 for a fast handler;
//   - average_processing_time is Math.round(processing_time / num_requests) (±1 covers it).

class CheckFailed extends Error {}

function ok(what) {
  process.stdout.write(`ok: ${what}\n`);
}
function relaxed(what) {
  process.stdout.write(`relaxed (nats.js reference): ${what}\n`);
}
function fail(what) {
  throw new CheckFailed(what);
}
function check(cond, what, detail) {
  if (!cond) fail(detail === undefined ? what : `${what}: ${detail}`);
  ok(what);
}

const show = (v) => (v === undefined ? "undefined" : JSON.stringify(v));
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isString = (v) => typeof v === "string";
const isCount = (v) => Number.isInteger(v) && v >= 0;

// Deep equality of JSON values (member order ignored, no extra members allowed).
function same(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => same(v, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return same(ka, kb) && ka.every((k) => same(a[k], b[k]));
}

function field(obj, key, pred, what, ctx) {
  check(pred(obj[key]), `${ctx}.${key} ${what}`, `got ${show(obj[key])}`);
}

// RFC 3339 date-time (ISO 8601 profile) in UTC, as ADR-32 asks for `started`.
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]00:00)$/;

// The fields every discovery response has (ADR-32 "Standard Field").
function checkStandard(r, type, ctx, ids) {
  field(r, "type", (v) => v === type, `is "${type}"`, ctx);
  field(r, "name", (v) => v === NAME, `is "${NAME}"`, ctx);
  field(r, "id", (v) => isString(v) && v.length > 0, "is a non-empty string", ctx);
  if (ids.id === undefined) ids.id = r.id;
  field(r, "id", (v) => v === ids.id, `is the id the first ping returned (${ids.id})`, ctx);
  field(r, "version", (v) => v === VERSION, `is "${VERSION}"`, ctx);
  field(r, "metadata", isObject, "is an object", ctx);
  check(Object.values(r.metadata).every(isString), `${ctx}.metadata holds strings`, show(r.metadata));
}

function checkEndpointId(e, ctx) {
  field(e, "name", (v) => v === "kv", 'is "kv"', ctx);
  field(e, "subject", (v) => v === subject, `is "${subject}"`, ctx);
  field(e, "queue_group", (v) => v === QUEUE, `is "${QUEUE}"`, ctx);
}

function checkPing(r, ctx, ids) {
  checkStandard(r, "io.nats.micro.v1.ping_response", ctx, ids);
}

function checkInfo(r, ctx, ids) {
  checkStandard(r, "io.nats.micro.v1.info_response", ctx, ids);
  field(r, "description", (v) => isString(v) && v.length > 0, "is a non-empty string", ctx);
  field(r, "endpoints", (v) => Array.isArray(v) && v.length === 1, "has one endpoint", ctx);
  const e = r.endpoints[0];
  checkEndpointId(e, `${ctx}.endpoints[0]`);
  field(e, "metadata", isObject, "is an object", `${ctx}.endpoints[0]`);
}

function checkStats(r, ctx, ids) {
  checkStandard(r, "io.nats.micro.v1.stats_response", ctx, ids);
  field(r, "started", (v) => isString(v) && RFC3339_UTC.test(v), "is an RFC 3339 UTC timestamp", ctx);
  const started = Date.parse(r.started);
  const age = Date.now() - started;
  // A little slack ahead for clocks of the same machine read at different moments.
  check(Number.isFinite(started) && age >= -5000 && age <= 10 * 60 * 1000,
        `${ctx}.started is within the last 10 minutes`, `${r.started} (${age} ms ago)`);
  field(r, "endpoints", (v) => Array.isArray(v) && v.length === 1, "has one endpoint", ctx);
  const e = r.endpoints[0];
  const ectx = `${ctx}.endpoints[0]`;
  checkEndpointId(e, ectx);
  for (const k of ["num_requests", "num_errors", "processing_time", "average_processing_time"]) {
    field(e, k, isCount, "is a whole number >= 0", ectx);
  }
  if (reference && e.last_error === undefined) {
    relaxed(`${ectx}.last_error is absent (nats.js omits it until a handler throws)`);
  } else {
    field(e, "last_error", isString, "is a string", ectx);
  }
  return e;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new CheckFailed(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// One discovery query: every response it gathers (nats.js stops 300 ms after the last one, or
// after maxWait without any).
async function discover(client, verb, name, id) {
  const what = `${verb}(${[name, id].filter((x) => x !== undefined).map(show).join(", ")})`;
  const gather = async () => {
    const out = [];
    for await (const r of await client[verb](name, id)) out.push(r);
    return out;
  };
  let answers;
  try {
    answers = await withTimeout(gather(), REQUEST_TIMEOUT_MS + 3000, what);
  } catch (err) {
    // No service at all: nats.js rejects with a no-responders error rather than answering none.
    if (err instanceof CheckFailed) throw err;
    fail(`${what}: ${err.message}`);
  }
  check(answers.length === 1, `${what}: exactly one instance answers`, `${answers.length} answered`);
  return { r: answers[0], ctx: what };
}

// The endpoint calls of (b): what each sends and the answer the contract requires.
const calls = [
  { what: "set name", req: { set: { key: "name", value: "tenorite" } }, ok: { ok: {} } },
  { what: "get name", req: { get: { key: "name" } }, ok: { found: { value: "tenorite" } } },
  { what: "get missing", req: { get: { key: "missing" } }, ok: { found: { value: null } } },
  {
    what: "set 'a b'",
    req: { set: { key: "a b", value: "x" } },
    err: { code: 400, description: 'invalid key "a b"', payload: { invalid_key: { key: "a b" } } },
  },
  {
    what: "del missing",
    req: { del: { key: "missing" } },
    err: { code: 404, description: "no such key: missing", payload: { unexpected: { what: "no such key: missing" } } },
  },
  { what: "del name", req: { del: { key: "name" } }, ok: { ok: {} } },
  { what: "get name (deleted)", req: { get: { key: "name" } }, ok: { found: { value: null } } },
  { what: "'not json'", raw: "not json", err: { code: 400, prefix: "undecodable request" } },
  { what: '{"nope":{}}', req: { nope: {} }, err: { code: 400, prefix: "undecodable request" } },
];

async function call(nc, c) {
  const body = c.raw !== undefined ? c.raw : JSON.stringify(c.req);
  let m;
  try {
    m = await nc.request(subject, body, { timeout: REQUEST_TIMEOUT_MS });
  } catch (err) {
    fail(`${c.what}: request failed: ${err.message}`);
  }
  const se = ServiceError.toServiceError(m);
  const text = m.string();
  if (c.ok) {
    check(!ServiceError.isServiceError(m), `${c.what}: not a service error`,
          se ? `${se.code} ${se.message}` : "");
    let v;
    try {
      v = JSON.parse(text);
    } catch (err) {
      fail(`${c.what}: the answer is not JSON: ${show(text)}`);
    }
    check(same(v, c.ok), `${c.what} -> ${JSON.stringify(c.ok)}`, `got ${text}`);
    return null;
  }
  check(se !== null, `${c.what}: a service error`, `got a plain answer ${show(text)}`);
  const rawCode = m.headers.get(ServiceErrorCodeHeader);
  const description = m.headers.get(ServiceErrorHeader);
  check(rawCode === String(c.err.code) && se.code === c.err.code,
        `${c.what}: ${ServiceErrorCodeHeader} is "${c.err.code}"`, `got ${show(rawCode)}`);
  if (c.err.description !== undefined) {
    check(description === c.err.description && se.message === c.err.description,
          `${c.what}: ${ServiceErrorHeader} is ${show(c.err.description)}`, `got ${show(description)}`);
  } else {
    check(isString(description) && description.startsWith(c.err.prefix),
          `${c.what}: ${ServiceErrorHeader} starts with ${show(c.err.prefix)}`, `got ${show(description)}`);
  }
  if (c.err.payload !== undefined) {
    let v;
    try {
      v = JSON.parse(text);
    } catch (err) {
      fail(`${c.what}: the error payload is not JSON: ${show(text)}`);
    }
    check(same(v, c.err.payload), `${c.what}: payload ${JSON.stringify(c.err.payload)}`, `got ${text}`);
  } else {
    check(m.data.length === 0, `${c.what}: no payload`, `got ${show(text)}`);
  }
  return description;
}

async function main() {
  const nc = await connect({ servers: url, name: "tenorite-interop client.js", timeout: 5000, reconnect: false });
  try {
    const client = new Svcm(nc).client({ strategy: "stall", maxWait: REQUEST_TIMEOUT_MS });
    const ids = {};

    // (a) discovery
    for (const [verb, checker] of [["ping", checkPing], ["info", checkInfo], ["stats", checkStats]]) {
      for (const sel of [[], [NAME], [NAME, "id"]]) {
        const q = sel.length === 2 ? [NAME, ids.id] : sel;
        const { r, ctx } = await discover(client, verb, ...q);
        checker(r, ctx, ids);
        if (verb === "stats") {
          const e = r.endpoints[0];
          check(e.num_requests === 0 && e.num_errors === 0, `${ctx}: no requests yet`, show(e));
        }
      }
    }

    // (b) the endpoint
    let errors = 0;
    let lastError = null;
    for (const c of calls) {
      const d = await call(nc, c);
      if (d !== null) {
        errors++;
        lastError = d;
      }
    }

    // (c) the stats of (b)
    const { r, ctx } = await discover(client, "stats", NAME, ids.id);
    const e = checkStats(r, ctx, ids);
    const ectx = `${ctx}.endpoints[0]`;
    check(e.num_requests === calls.length, `${ectx}.num_requests is ${calls.length}`, `got ${e.num_requests}`);
    if (reference && e.num_errors === 0) {
      relaxed(`${ectx}.num_errors is 0, not ${errors} (nats.js does not count respondError())`);
    } else {
      check(e.num_errors === errors, `${ectx}.num_errors is ${errors}`, `got ${e.num_errors}`);
    }
    if (reference && e.num_errors === 0) {
      check(e.last_error === undefined || e.last_error === "", `${ectx}.last_error is empty or absent`,
            show(e.last_error));
    } else {
      // tenorite (and Go's micro) report "<code>:<description>", nats.js a thrown error's message:
      // the description is what they share.
      check(isString(e.last_error) && e.last_error.includes(lastError),
            `${ectx}.last_error contains ${show(lastError)}`, `got ${show(e.last_error)}`);
    }
    if (reference && e.processing_time === 0) {
      relaxed(`${ectx}.processing_time is 0 (nats.js measures whole milliseconds)`);
    } else {
      check(e.processing_time > 0, `${ectx}.processing_time > 0`, `got ${e.processing_time}`);
    }
    const avg = Math.floor(e.processing_time / e.num_requests);
    check(Math.abs(e.average_processing_time - avg) <= 1,
          `${ectx}.average_processing_time is processing_time / num_requests (${avg} ±1)`,
          `got ${e.average_processing_time}`);
  } finally {
    await nc.close();
  }
}

const watchdog = setTimeout(() => {
  process.stderr.write(`client.js: FAILED: not done within ${OVERALL_TIMEOUT_MS} ms\n`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

main().then(
  () => {
    clearTimeout(watchdog);
    process.stdout.write(`client.js: OK (${calls.length} endpoint calls, ${url} ${subject})\n`);
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`client.js: FAILED: ${err instanceof CheckFailed ? err.message : err.stack || err}\n`);
    process.exit(1);
  },
);
