// Load scenarios of the platform (platform-docs: baseline, normal, peak, stress), against one
// corpgraph (or the gateway):
//
//   k6 run -e SCENARIO=normal -e URL=http://127.0.0.1:8000/graphql ops/k6/scenarios.js
//   corpgraph loadtest normal --scale 0.05        (the same, with a summary file)
//
// Environment: SCENARIO (baseline 100 VUs, normal 500, peak 2,000, stress 5,000), SCALE (VUs
// multiplied by it, for small machines: 0.05 runs normal with 25), DURATION (the hold at full
// load), URL (the GraphQL endpoint), API_KEY (sent as x-api-key: use an enterprise-tier key, or
// the anonymous budget throttles the run), SUMMARY (where to write the JSON summary).
//
// Each virtual user mixes the requests of the performance benchmark: LIGHT sent as a persisted
// query (APQ: the hash alone over GET, the document only when the server asks), LIGHT and HEAVY
// as plain POSTs; a few hold a filing-alert subscription over graphql-transport-ws.
import http from "k6/http";
import ws from "k6/ws";
import crypto from "k6/crypto";
import { check, sleep } from "k6";

const SCENARIOS = {
  baseline: { vus: 100, hold: "1m", p95: 200, errors: 0.001 },
  normal: { vus: 500, hold: "5m", p95: 200, errors: 0.001 },
  peak: { vus: 2000, hold: "3m", p95: 500, errors: 0.01 },
  stress: { vus: 5000, hold: "5m", p95: 2000, errors: 0.05 },
};
const name = __ENV.SCENARIO || "baseline";
const scenario = SCENARIOS[name];
if (!scenario) throw new Error(`SCENARIO must be one of ${Object.keys(SCENARIOS)}, got ${name}`);
const vus = Math.max(1, Math.round(scenario.vus * Number(__ENV.SCALE || 1)));
const hold = __ENV.DURATION || scenario.hold;
const subscribers = Math.max(1, Math.round(vus / 20));
const url = __ENV.URL || "http://127.0.0.1:8000/graphql";

const LIGHT = open("../bench/light.graphql");
const HEAVY = open("../bench/heavy.graphql");
const LIGHT_HASH = crypto.sha256(LIGHT, "hex");
const headers = { "Content-Type": "application/json" };
if (__ENV.API_KEY) headers["x-api-key"] = __ENV.API_KEY;

export const options = {
  scenarios: {
    queries: {
      executor: "ramping-vus",
      exec: "queries",
      stages: [
        { duration: rampOf(hold), target: vus },
        { duration: hold, target: vus },
      ],
      gracefulRampDown: "5s",
    },
    alerts: {
      executor: "constant-vus",
      exec: "alerts",
      vus: subscribers,
      duration: hold,
    },
  },
  thresholds: {
    "http_req_duration{scenario:queries}": [`p(95)<${scenario.p95}`],
    http_req_failed: [`rate<${scenario.errors}`],
    checks: [`rate>${1 - scenario.errors}`],
  },
  summaryTrendStats: ["avg", "med", "p(95)", "p(99)", "max"],
};

// a tenth of the hold, at least a second: how long the ramp to full load takes
function rampOf(duration) {
  const match = /^(\d+)(ms|s|m|h)$/.exec(duration);
  if (!match) return "10s";
  const seconds = Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2]];
  return `${Math.max(1, Math.round(seconds / 10))}s`;
}

function answered(response, label) {
  return check(response, {
    [`${label}: status 200`]: (r) => r.status === 200,
    [`${label}: no errors`]: (r) => typeof r.body === "string" && r.body.indexOf('"errors"') === -1,
  });
}

function persistedLight() {
  const extensions = JSON.stringify({ persistedQuery: { version: 1, sha256Hash: LIGHT_HASH } });
  const get = http.get(`${url}?extensions=${encodeURIComponent(extensions)}`, {
    headers: { ...headers, "apollo-require-preflight": "true" },
    tags: { request: "light-persisted" },
  });
  if (get.status === 200 && get.body.indexOf("PERSISTED_QUERY_NOT_FOUND") !== -1) {
    // the APQ protocol: the server has not seen it yet; send the document with its hash
    const body = JSON.stringify({ query: LIGHT, extensions: JSON.parse(extensions) });
    return answered(http.post(url, body, { headers, tags: { request: "light-register" } }), "light");
  }
  return answered(get, "light persisted");
}

export function queries() {
  const pick = Math.random();
  if (pick < 0.6) {
    persistedLight();
  } else if (pick < 0.85) {
    const body = JSON.stringify({ query: LIGHT });
    answered(http.post(url, body, { headers, tags: { request: "light" } }), "light");
  } else {
    const body = JSON.stringify({ query: HEAVY });
    answered(http.post(url, body, { headers, tags: { request: "heavy" } }), "heavy");
  }
  sleep(0.1);
}

export function alerts() {
  const socketHeaders = { "Sec-WebSocket-Protocol": "graphql-transport-ws" };
  if (headers["x-api-key"]) socketHeaders["x-api-key"] = headers["x-api-key"];
  const seconds = 10;
  const response = ws.connect(url.replace(/^http/, "ws"), { headers: socketHeaders }, (socket) => {
    let acknowledged = false;
    socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init" })));
    socket.on("message", (text) => {
      const message = JSON.parse(text);
      if (message.type === "connection_ack") {
        acknowledged = true;
        socket.send(JSON.stringify({
          id: "1",
          type: "subscribe",
          payload: { query: "subscription { filingAdded { accessionNumber formType } }" },
        }));
      }
      check(message, { "subscription: no error": (m) => m.type !== "error" });
    });
    socket.setTimeout(() => {
      check(acknowledged, { "subscription: connection acknowledged": (ok) => ok });
      socket.send(JSON.stringify({ id: "1", type: "complete" }));
      socket.close();
    }, seconds * 1000);
  });
  check(response, { "subscription: switched protocols": (r) => r && r.status === 101 });
}

export function handleSummary(data) {
  const out = { stdout: summaryText(data) };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data, null, 2);
  return out;
}

function summaryText(data) {
  const metric = (key) => (data.metrics[key] ? data.metrics[key].values : {});
  const duration = metric("http_req_duration{scenario:queries}");
  const checks = metric("checks");
  const lines = [
    `corpgraph ${name}: ${vus} VUs (+${subscribers} subscribers), ${hold} at full load`,
    `  requests/s ${(metric("http_reqs").rate || 0).toFixed(1)}`,
    `  p95 ${(duration["p(95)"] || 0).toFixed(1)} ms, p99 ${(duration["p(99)"] || 0).toFixed(1)} ms`,
    `  failed requests ${((metric("http_req_failed").rate || 0) * 100).toFixed(2)}%`,
    `  checks ${checks.passes || 0} passed, ${checks.fails || 0} failed`,
  ];
  for (const [key, threshold] of Object.entries(data.metrics).filter(([, m]) => m.thresholds)) {
    for (const [expression, result] of Object.entries(threshold.thresholds)) {
      lines.push(`  threshold ${key} ${expression}: ${result.ok ? "ok" : "CROSSED"}`);
    }
  }
  return lines.join("\n") + "\n";
}
