// Subscribes over Server-Sent Events with a real client and prints one JSON line per event.
//
//   node sse.mjs graphql-sse URL QUERY VARIABLES_JSON COUNT
//     the npm `graphql-sse` client in distinct connections mode (a POST per subscription);
//     prints {"data": ...} per event, then exits after COUNT events.
//   node sse.mjs eventsource URL QUERY VARIABLES_JSON COUNT
//     the npm `eventsource` package, as a browser's EventSource: a GET that reconnects by
//     itself and sends the last event id back as Last-Event-ID. Prints {"open": true} at each
//     (re)connection and {"id": ..., "data": ...} per event; exits after COUNT events.
//
// A failure is printed as {"error": ...}, exit 1.
import { EventSource } from "eventsource";
import { createClient } from "graphql-sse";

const [client, url, query, variables, count] = process.argv.slice(2);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
let received = 0;
const counted = () => {
  received += 1;
  if (received >= Number(count)) process.exit(0);
};

if (client === "graphql-sse") {
  const sse = createClient({ url, retryAttempts: 0 });
  sse.subscribe(
    { query, variables: JSON.parse(variables) },
    {
      next: (event) => {
        print(event);
        counted();
      },
      error: (error) => {
        print({ error: String(error?.message ?? error) });
        process.exit(1);
      },
      complete: () => process.exit(received >= Number(count) ? 0 : 1),
    },
  );
} else {
  const address = new URL(url);
  address.searchParams.set("query", query);
  address.searchParams.set("variables", variables);
  const source = new EventSource(address);
  source.onopen = () => print({ open: true });
  source.addEventListener("next", (event) => {
    print({ id: event.lastEventId, data: JSON.parse(event.data) });
    counted();
  });
  source.addEventListener("complete", () => {
    source.close();
    process.exit(received >= Number(count) ? 0 : 1);
  });
}
