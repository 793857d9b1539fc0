#!/usr/bin/env node
// SPDX-License-Identifier: BSL-1.0
// A kv service written with nats.js's services library (ADR-32), the peer that tenorite's
// caller (`kv_remote call <url> <subject> json`) talks to in tests/nats/interop/interop_test.sh.
// Same semantics and the same JSON contract as tenorite's kv service in JSON mode:
//   requests   {"set":{"key":K,"value":V}}  {"get":{"key":K}}  {"del":{"key":K}}
//   answers    {"ok":{}}  {"found":{"value":V}}  {"found":{"value":null}}
//   errors     (headers Nats-Service-Error-Code / Nats-Service-Error)
//              400 invalid key "<key>"       payload {"invalid_key":{"key":K}}
//              404 no such key: <key>        payload {"unexpected":{"what":"no such key: <key>"}}
//              400 undecodable request: ...  no payload
//              500 boom                      no payload: {"get":{"key":"boom"}}, so that a
//                                            caller's mapping of an error without a body is tested
//
// usage: node service.js <nats-url> <subject> [service-name]   (name defaults to "kv-node")
// Prints `ready` on stdout once its subscriptions reached nats-server; stops on SIGTERM/SIGINT
// (service stopped, connection drained, exit 0).
"use strict";

const { connect } = require("@nats-io/transport-node");
const { Svcm } = require("@nats-io/services");

const [url, subject, name = "kv-node"] = process.argv.slice(2);
if (!url || !subject) {
  process.stderr.write("usage: node service.js <nats-url> <subject> [service-name]\n");
  process.exit(2);
}

// The request decoded into {op, key, value}, or a string saying why it is undecodable.
function decode(msg) {
  let req;
  try {
    req = JSON.parse(msg.string());
  } catch (err) {
    return `not JSON (${err.message})`;
  }
  if (req === null || typeof req !== "object" || Array.isArray(req)) {
    return "not a JSON object";
  }
  const ops = Object.keys(req);
  if (ops.length !== 1) {
    return `expected one of set, get, del; got ${ops.length} members`;
  }
  const op = ops[0];
  const args = req[op];
  if (op !== "set" && op !== "get" && op !== "del") {
    return `unknown operation ${JSON.stringify(op)}`;
  }
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    return `${op}: expected an object`;
  }
  if (typeof args.key !== "string") {
    return `${op}: key must be a string`;
  }
  if (op === "set" && typeof args.value !== "string") {
    return "set: value must be a string";
  }
  return { op, key: args.key, value: args.value };
}

function validKey(key) {
  return key !== "" && !key.includes(" ");
}

const store = new Map();

function handle(msg) {
  const req = decode(msg);
  if (typeof req === "string") {
    msg.respondError(400, `undecodable request: ${req}`);
    return;
  }
  const { op, key, value } = req;
  if (!validKey(key)) {
    msg.respondError(400, `invalid key ${JSON.stringify(key)}`, JSON.stringify({ invalid_key: { key } }));
    return;
  }
  switch (op) {
    case "set":
      store.set(key, value);
      msg.respond(JSON.stringify({ ok: {} }));
      return;
    case "get":
      if (key === "boom") {
        msg.respondError(500, "boom");
        return;
      }
      msg.respond(JSON.stringify({ found: { value: store.has(key) ? store.get(key) : null } }));
      return;
    case "del": {
      if (!store.delete(key)) {
        const what = `no such key: ${key}`;
        msg.respondError(404, what, JSON.stringify({ unexpected: { what } }));
        return;
      }
      msg.respond(JSON.stringify({ ok: {} }));
      return;
    }
  }
}

async function main() {
  const nc = await connect({ servers: url, name: `tenorite-interop ${name}` });
  const svc = await new Svcm(nc).add({
    name,
    version: "1.0.0",
    description: "kv: a string map (set, get, del) in JSON, the nats.js peer of tenorite's kv service",
    metadata: { implementation: "nats.js" },
  });
  svc.addEndpoint("kv", {
    subject,
    // nats.js leaves an endpoint's metadata out of INFO unless it is given.
    metadata: { operations: "set get del" },
    handler: (err, msg) => {
      if (err) {
        process.stderr.write(`service.js: ${err.message}\n`);
        return;
      }
      handle(msg);
    },
  });
  await nc.flush();
  process.stdout.write("ready\n");

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await svc.stop();
    await nc.drain();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // Stopped from elsewhere (the connection closed): no process left behind.
  svc.stopped.then((err) => {
    if (!stopping) {
      process.stderr.write(`service.js: stopped${err ? `: ${err.message}` : ""}\n`);
      process.exit(1);
    }
  });
}

main().catch((err) => {
  process.stderr.write(`service.js: ${err.message}\n`);
  process.exit(1);
});
