// Runs the GraphQL over HTTP audit of the npm `graphql-http` package (`auditServer`: every
// MUST, SHOULD and MAY of the spec it checks) against a running server and prints the results
// as one JSON array: [{"id", "name", "status", "reason"?, "httpStatus"?, "body"?}, ...].
// `status` is "ok", or "notice", "warn" or "error" with a `reason`, the answer's HTTP status
// and the start of its body.
//
//   node audit.mjs URL
import { auditServer } from "graphql-http";

const [url] = process.argv.slice(2);

async function described(result) {
  if (result.status === "ok") return { id: result.id, name: result.name, status: result.status };
  let body;
  try {
    body = (await result.response.clone().text()).slice(0, 500);
  } catch (error) {
    body = `(body not readable: ${error?.message ?? error})`;
  }
  return {
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.reason,
    httpStatus: result.response.status,
    body,
  };
}

const results = await auditServer({ url, fetchFn: fetch });
process.stdout.write(`${JSON.stringify(await Promise.all(results.map(described)))}\n`);
