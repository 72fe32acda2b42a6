// Composes the subgraphs listed in a supergraph config (Rover's format) with Apollo's own
// composition library and writes the supergraph SDL the gateway serves.
//
//   node compose.mjs [CONFIG] [OUT]     defaults: supergraph.yaml, supergraph.graphql (beside this)
//
// Composition errors are printed and exit with status 1; hints are printed and do not fail.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";
import YAML from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const configPath = resolve(process.argv[2] ?? resolve(here, "supergraph.yaml"));
const outPath = resolve(process.argv[3] ?? resolve(here, "supergraph.graphql"));

const config = YAML.parse(readFileSync(configPath, "utf8"));
const services = Object.entries(config.subgraphs).map(([name, subgraph]) => ({
  name,
  url: subgraph.routing_url,
  typeDefs: parse(readFileSync(resolve(dirname(configPath), subgraph.schema.file), "utf8")),
}));

const result = composeServices(services);
for (const hint of result.hints ?? []) {
  console.error(`hint: ${hint.toString()}`);
}
if (result.errors?.length) {
  for (const error of result.errors) {
    console.error(`error: ${error.message}`);
  }
  process.exit(1);
}
writeFileSync(outPath, result.supergraphSdl.endsWith("\n") ? result.supergraphSdl : `${result.supergraphSdl}\n`);
console.error(`composed ${services.map((s) => s.name).join(", ")} into ${outPath}`);
