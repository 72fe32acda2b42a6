// Hive Gateway configuration: the same file runs in the tests (tests/test_supergraph.py)
// and in production (the `gateway` service of compose.yaml).
//
//   npx hive-gateway supergraph [SUPERGRAPH] -c gateway.config.ts --port 4000
//
// Environment:
//   CORPGRAPH_GATEWAY_SECRET         shared secret sent to corpgraph only (unset: none sent)
//   CORPGRAPH_GATEWAY_SECRET_HEADER  its header name (default x-corpgraph-gateway-secret)
//   CORPGRAPH_CLIENT_IP_HEADER       header naming the client's IP (default x-client-ip)
//   CORPGRAPH_SUBGRAPH               corpgraph's name in supergraph.yaml (default corpgraph)
import type { IncomingMessage } from "node:http";
import { defineConfig } from "@graphql-hive/gateway";

const corpgraph = process.env.CORPGRAPH_SUBGRAPH ?? "corpgraph";
const secret = process.env.CORPGRAPH_GATEWAY_SECRET || undefined;
const secretHeader = process.env.CORPGRAPH_GATEWAY_SECRET_HEADER ?? "x-corpgraph-gateway-secret";
const clientIpHeader = process.env.CORPGRAPH_CLIENT_IP_HEADER ?? "x-client-ip";

// Headers every subgraph receives from the client, as they came.
const PROPAGATED = ["authorization", "x-api-key", "traceparent", "tracestate"];

// The peer of the client's socket. Never a header: the gateway is the edge, so any
// X-Forwarded-For it receives was written by the client itself.
function clientIp(context: { req?: IncomingMessage }): string | undefined {
  return context.req?.socket?.remoteAddress ?? undefined;
}

export const gatewayConfig = defineConfig({
  supergraph: "./supergraph.graphql",
  propagateHeaders: {
    fromClientToSubgraphs({ request, context, subgraphName }) {
      const headers: Record<string, string | undefined> = {
        [clientIpHeader]: clientIp(context as { req?: IncomingMessage }),
      };
      for (const name of PROPAGATED) {
        headers[name] = request.headers.get(name) ?? undefined;
      }
      if (subgraphName === corpgraph && secret) {
        headers[secretHeader] = secret;
      }
      return headers;
    },
  },
  transportEntries: {
    [corpgraph]: {
      options: {
        // Subscriptions go to corpgraph over graphql-transport-ws on its GraphQL path,
        // authenticated like HTTP requests (connection params carry the same headers).
        subscriptions: {
          kind: "ws",
          location: "/graphql",
          options: {
            connectionParams: {
              authorization: "{context.headers.authorization}",
              ...(secret ? { [secretHeader]: secret } : {}),
            },
          },
        },
      },
    },
  },
  // Request limits, matching corpgraph's own (DESIGN.md): refused here before any subgraph
  // is asked. corpgraph still enforces depth, aliases, root fields, tokens and cost itself.
  maxTokens: 5000,
  maxDepth: 15,
  blockFieldSuggestions: true,
  upstreamTimeout: 30_000,
  requestDeadline: 60_000,
  batching: false,
  landingPage: false,
});
