// A typed corpgraph client. The documents and their types come from graphql-codegen's client
// preset (`npm run codegen`); each document carries its SHA-256, so requests send that id and
// never the query text: the server may run in trusted mode.
//
//   node dist/client.js URL TICKER [SINCE]
//
// prints the company's page, its sector's dashboard and, given an ingestCursor SINCE, the first
// filing alert after it, each as one JSON line.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { createClient } from "graphql-sse";

import {
  CompanyPageDocument,
  FilingAlertsDocument,
  type FilingAlertsSubscription,
  SectorDashboardDocument,
} from "./gql/graphql.js";

type Persisted<Result, Variables> = TypedDocumentNode<Result, Variables> & {
  __meta__?: { hash?: string };
};

interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

export class CorpgraphError extends Error {
  constructor(readonly errors: GraphQLError[]) {
    super(errors.map((error) => `${error.extensions?.code ?? "ERROR"}: ${error.message}`).join("; "));
  }
}

function persistedQuery(document: { __meta__?: { hash?: string } }) {
  const hash = document.__meta__?.hash;
  if (!hash?.startsWith("sha256:")) throw new Error("run `npm run codegen`: a document lacks its hash");
  return { persistedQuery: { version: 1, sha256Hash: hash.slice("sha256:".length) } };
}

/** Runs a persisted query over GET (cacheable by HTTP caches) and returns its typed data. */
export async function query<Result, Variables extends Record<string, unknown>>(
  url: string,
  document: Persisted<Result, Variables>,
  variables: Variables,
): Promise<Result> {
  const params = new URLSearchParams({
    extensions: JSON.stringify(persistedQuery(document)),
    variables: JSON.stringify(variables),
  });
  const response = await fetch(`${url}?${params}`, {
    headers: { accept: "application/graphql-response+json", "apollo-require-preflight": "true" },
  });
  const body = (await response.json()) as { data?: Result | null; errors?: GraphQLError[] };
  if (body.errors?.length || body.data == null) throw new CorpgraphError(body.errors ?? []);
  return body.data;
}

/** The first filing alert after `since`, over Server-Sent Events (graphql-sse). */
export async function firstAlert(
  url: string,
  since: string,
): Promise<FilingAlertsSubscription["filingAdded"]> {
  const client = createClient({ url });
  const alerts = client.iterate<FilingAlertsSubscription>({
    query: "", // the id names the document
    variables: { since },
    extensions: persistedQuery(FilingAlertsDocument as Persisted<unknown, unknown>),
  });
  try {
    for await (const event of alerts) {
      if (event.errors?.length) throw new CorpgraphError([...event.errors]);
      if (event.data) return event.data.filingAdded;
    }
    throw new Error("the alert stream ended");
  } finally {
    await alerts.return?.();
    client.dispose();
  }
}

async function main(): Promise<void> {
  const [url, ticker, since] = process.argv.slice(2);
  if (!url || !ticker) throw new Error("usage: node dist/client.js URL TICKER [SINCE]");
  const page = await query(url, CompanyPageDocument, { ticker, filings: 3 });
  const company = page.company;
  console.log(JSON.stringify({ company: company?.name ?? null, filings: company?.filings.totalCount ?? 0 }));
  if (company?.sector) {
    const dashboard = await query(url, SectorDashboardDocument, { sector: company.sector, first: 5 });
    const tickers = dashboard.companies.nodes.map((peer) => peer.ticker);
    console.log(JSON.stringify({ sector: company.sector, tickers }));
  }
  if (since) {
    const alert = await firstAlert(url, since);
    console.log(JSON.stringify({ alert: alert.accessionNumber, ticker: alert.company.ticker }));
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
