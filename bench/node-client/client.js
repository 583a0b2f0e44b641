// An independent WebSocket client for wstime-bench: the `ws` library, not our load
// generator, holds N sockets and measures every tick, so a figure that only one client sees
// says something about that client, not the server.
//
// It speaks the load generator's protocol (same flags, `READY <seconds>` once every socket is
// open, `RESULT <json>` at the end in the shape of wstime-bench's SteadyResult) so the
// driver runs either the same way. Each tick is measured two ways:
// - interval lateness: the time since the connection's previous tick, less 1 s (what the
//   load generator has always reported; blind to a schedule that drifts or shifts phase,
//   since every interval after the shift is a clean second again);
// - schedule lateness: for each connection, offset_k = arrival_k − k·1 s, where k is the
//   count the tick carries; anchor = the smallest offset over every tick from the moment
//   the socket opened to the end of the window; lateness_k = offset_k − anchor. A server
//   whose ticks drift, or jump to a later phase after a stall, is late from then on.
// With `--trace FILE` it also writes every tick it read (`connection,count,arrival_ms`).
"use strict";

const fs = require("fs");
const { performance } = require("perf_hooks");
const { parseArgs } = require("util");
const WebSocket = require("ws");

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    connections: { type: "string" },
    "id-prefix": { type: "string", default: "node" },
    "source-ips": { type: "string", default: "127.0.0.1" },
    concurrency: { type: "string", default: "200" },
    "warmup-secs": { type: "string", default: "1" },
    "start-on-signal": { type: "boolean", default: false },
    "hold-secs": { type: "string" },
    "linger-secs": { type: "string", default: "2" },
    trace: { type: "string" },
  },
});
const connections = Number(opts.connections);
const sources = opts["source-ips"].split(",");
const concurrency = Number(opts.concurrency);
const holdMs = Number(opts["hold-secs"]) * 1000;
if (!opts.url || !(connections > 0) || !(holdMs > 0)) {
  console.error("usage: client.js --url ws://127.0.0.1:PORT/ --connections N --hold-secs S");
  process.exit(2);
}

// The load generator's limits: no open within 5 s is a failed connect.
const CONNECT_TIMEOUT_MS = 5000;
const TICK = /: you have been connected for (\d+) seconds$/;

/** Every socket's record; `measuring` is the window, once it is set. */
const held = [];
let measuring = null;
let failedConnects = 0;

/** Opens socket `i` and reads it from the moment it opens; resolves once open or failed. */
function open(i) {
  const record = {
    ws: null,
    previous: null, // { at, count } of the last tick
    anchor: Infinity, // the smallest arrival − count·1 s so far
    offsets: [], // arrival − count·1 s of the ticks in the window
    intervals: [], // interval lateness of the ticks in the window
    outOfOrder: 0,
    ticks: 0,
    closed: false,
    trace: [],
  };
  const ws = new WebSocket(`${opts.url}?id=${opts["id-prefix"]}-${i}`, {
    localAddress: sources[i % sources.length],
    handshakeTimeout: CONNECT_TIMEOUT_MS,
    // Neither server compresses; offering it would only make the handshakes differ.
    perMessageDeflate: false,
  });
  record.ws = ws;
  ws.on("message", (data) => {
    const at = performance.now();
    const match = TICK.exec(data.toString());
    if (!match) return;
    const count = Number(match[1]);
    if (opts.trace) record.trace.push(`${i},${count},${at.toFixed(3)}`);
    const offset = at - count * 1000;
    const inWindow = measuring !== null && at >= measuring.from && at < measuring.until;
    if (measuring === null || at < measuring.until) record.anchor = Math.min(record.anchor, offset);
    if (inWindow) {
      record.offsets.push(offset);
      if (record.previous) {
        record.ticks += 1;
        record.intervals.push(Math.max(0, at - record.previous.at - 1000));
        if (count !== record.previous.count + 1) record.outOfOrder += 1;
      }
    }
    record.previous = { at, count };
  });
  return new Promise((resolve) => {
    ws.on("open", () => {
      held.push(record);
      resolve();
    });
    ws.on("close", () => {
      record.closed = true;
      resolve();
    });
    // Every error is followed by "close", which is where it counts; unheard, it would throw.
    ws.on("error", () => {});
  }).then(() => {
    if (ws.readyState !== WebSocket.OPEN) failedConnects += 1;
  });
}

/** Opens every socket, at most `concurrency` at a time. */
async function openAll() {
  let next = 0;
  const worker = async () => {
    while (next < connections) await open(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, connections) }, worker));
}

/** p50, p99 and max by nearest rank, as wstime-bench's Summary computes them. */
function summary(samples) {
  if (samples.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(samples).sort();
  const rank = (p) => sorted[Math.min(Math.max(Math.ceil(p * sorted.length), 1), sorted.length) - 1];
  return { count: sorted.length, p50: rank(0.5), p99: rank(0.99), max: sorted[sorted.length - 1] };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const started = performance.now();
  await openAll();
  const connectSecs = (performance.now() - started) / 1000;
  // Listening before saying READY: a driver signals as soon as it reads the line.
  const go = opts["start-on-signal"]
    ? new Promise((resolve) => process.once("SIGUSR1", resolve))
    : Promise.resolve();
  console.log(`READY ${connectSecs.toFixed(3)}`);
  await go;

  const from = performance.now() + Number(opts["warmup-secs"]) * 1000;
  measuring = { from, until: from + holdMs };
  await sleep(measuring.until - performance.now());
  // Counted now, before this client's own closing burst can disturb anything.
  const dropped = held.filter((r) => r.closed).length;
  await sleep(Number(opts["linger-secs"]) * 1000);

  const closing = held
    .filter((r) => !r.closed)
    .map((r) => new Promise((resolve) => r.ws.once("close", resolve)));
  for (const record of held) record.ws.close();
  await Promise.race([Promise.all(closing), sleep(5000)]);

  if (opts.trace) fs.writeFileSync(opts.trace, held.flatMap((r) => r.trace).join("\n") + "\n");
  const result = {
    connections,
    failed_connects: failedConnects,
    connect_secs: connectSecs,
    lateness_ms: summary(held.flatMap((r) => r.intervals)),
    schedule_lateness_ms: summary(held.flatMap((r) => r.offsets.map((o) => o - r.anchor))),
    out_of_order: held.reduce((n, r) => n + r.outOfOrder, 0),
    ticks: held.reduce((n, r) => n + r.ticks, 0),
    dropped,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
