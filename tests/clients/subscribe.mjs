// Subscribes with the npm `graphql-ws` client and prints, one JSON line each:
// {"connected": true} once acknowledged, then every event, then exits after COUNT events.
//
//   node subscribe.mjs URL QUERY VARIABLES_JSON COUNT [CONNECTION_PARAMS_JSON] [EXTENSIONS_JSON]
//
// With EXTENSIONS_JSON naming a persisted document, QUERY may be empty (graphql-ws insists on a
// string).
// A closed connection or an error is printed as {"closed": code} / {"error": ...}, exit 1.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, query, variables, count, params, extensions] = process.argv.slice(2);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: params ? JSON.parse(params) : undefined,
  retryAttempts: 0,
  lazy: false,
  on: {
    connected: () => print({ connected: true }),
    closed: (event) => {
      print({ closed: event.code });
      process.exit(1);
    },
  },
});

let received = 0;
client.subscribe(
  {
    query,
    variables: JSON.parse(variables),
    ...(extensions ? { extensions: JSON.parse(extensions) } : {}),
  },
  {
    next: (event) => {
      print(event);
      received += 1;
      if (received >= Number(count)) {
        client.dispose();
        process.exit(0);
      }
    },
    error: (error) => {
      print({ error: Array.isArray(error) ? error : String(error?.message ?? error) });
      process.exit(1);
    },
    complete: () => process.exit(received >= Number(count) ? 0 : 1),
  },
);
