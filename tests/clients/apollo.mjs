// Runs one query twice with Apollo Client and its persisted-queries link (APQ), and prints,
// one JSON line each, every HTTP exchange the link makes ({"method", "hashOnly", "status",
// "code"}) and each result ({"data": ...} or {"error": ...}).
//
//   node apollo.mjs URL QUERY VARIABLES_JSON [get]
//
// With `get`, hashed requests go as GET (useGETForHashedQueries).
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { createHash } from "node:crypto";

const [url, query, variables, mode] = process.argv.slice(2);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function loggingFetch(input, init) {
  const response = await fetch(input, init);
  const sent = init.method === "GET" ? Object.fromEntries(new URL(input).searchParams) : JSON.parse(init.body);
  const body = await response.clone().json();
  print({
    method: init.method,
    hashOnly: !sent.query,
    status: response.status,
    code: body.errors?.[0]?.extensions?.code ?? null,
  });
  return response;
}

const persisted = createPersistedQueryLink({
  sha256: (text) => createHash("sha256").update(text).digest("hex"),
  useGETForHashedQueries: mode === "get",
});
const client = new ApolloClient({
  link: persisted.concat(new HttpLink({ uri: url, fetch: loggingFetch })),
  cache: new InMemoryCache(),
});

for (let run = 0; run < 2; run += 1) {
  try {
    const result = await client.query({
      query: gql(query),
      variables: JSON.parse(variables),
      fetchPolicy: "no-cache",
    });
    print({ data: result.data });
  } catch (error) {
    print({ error: String(error?.message ?? error) });
  }
}
