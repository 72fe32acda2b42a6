// Many graphql-ws subscribers at once, each with its own filter, spread over several servers.
//
//   node fanout.mjs URLS_COMMA_SEPARATED FILTERS_JSON
//
// FILTERS_JSON is an array of filingAdded arguments, one subscriber each. Prints
// {"ready": N} once every subscriber is connected and subscribed, then, when a line arrives on
// stdin, {"received": [[accessionNumber, ...] per subscriber], "latencies": [ms, ...]} and exits.
// An event's latency is measured from the `sentAt` (ms since the epoch) in its filing's title.
import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [urls, filtersJson] = process.argv.slice(2);
const servers = urls.split(",");
const filters = JSON.parse(filtersJson);
const query = `subscription($tickers: [String!], $formTypes: [String!], $since: String) {
  filingAdded(tickers: $tickers, formTypes: $formTypes, since: $since) { accessionNumber title } }`;

const received = filters.map(() => []);
const latencies = [];
let connected = 0;

filters.forEach((variables, index) => {
  const client = createClient({
    url: servers[index % servers.length],
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    on: { connected: () => { connected += 1; } },
  });
  client.subscribe({ query, variables }, {
    next: ({ data, errors }) => {
      if (errors) {
        process.stdout.write(`${JSON.stringify({ error: errors })}\n`);
        process.exit(1);
      }
      const filing = data.filingAdded;
      received[index].push(filing.accessionNumber);
      const sentAt = Number((filing.title ?? "").split("sentAt=")[1]);
      if (sentAt) latencies.push(Date.now() - sentAt);
    },
    error: (error) => {
      process.stdout.write(`${JSON.stringify({ error: String(error?.message ?? error) })}\n`);
      process.exit(1);
    },
    complete: () => {},
  });
});

const waitUntilConnected = setInterval(() => {
  if (connected === filters.length) {
    clearInterval(waitUntilConnected);
    // subscribe messages follow connection_ack: give the servers a moment to register them
    setTimeout(() => process.stdout.write(`${JSON.stringify({ ready: connected })}\n`), 1000);
  }
}, 50);

createInterface({ input: process.stdin }).once("line", () => {
  // exit once written: a pipe takes large writes asynchronously
  process.stdout.write(`${JSON.stringify({ received, latencies })}\n`, () => process.exit(0));
});
