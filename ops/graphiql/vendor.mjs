// Copies GraphiQL's browser bundles from node_modules into graph/static/graphiql/, laid out
// as a CDN lays out npm (<package>@<version>/<file>), and writes graph/static/graphiql.json
// naming them for graph/transports/graphiql.py. Run after `npm ci`: `npm run vendor`. The versions are
// package.json's (and its lock's), nowhere else.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const staticDir = join(here, "..", "..", "graph", "static");
const target = join(staticDir, "graphiql");

// the page's name for each file -> [npm package, file inside it]
const ASSETS = {
  react: ["react", "umd/react.production.min.js"],
  react_dom: ["react-dom", "umd/react-dom.production.min.js"],
  graphiql_js: ["graphiql", "graphiql.min.js"],
  graphiql_css: ["graphiql", "graphiql.min.css"],
  explorer_js: ["@graphiql/plugin-explorer", "dist/index.umd.js"],
  explorer_css: ["@graphiql/plugin-explorer", "dist/style.css"],
};

function versionOf(name) {
  const manifest = join(here, "node_modules", name, "package.json");
  return JSON.parse(readFileSync(manifest, "utf8")).version;
}

function copy(name, file, folder) {
  const destination = join(target, folder, file);
  mkdirSync(dirname(destination), { recursive: true });
  copyFileSync(join(here, "node_modules", name, file), destination);
}

rmSync(target, { recursive: true, force: true });
const paths = {};
const packages = {};
for (const [key, [name, file]] of Object.entries(ASSETS)) {
  const folder = `${name}@${versionOf(name)}`;
  copy(name, file, folder);
  if (existsSync(join(here, "node_modules", name, "LICENSE"))) copy(name, "LICENSE", folder);
  paths[key] = `${folder}/${file}`;
  packages[name] = versionOf(name);
}
const manifest = { packages, paths };
writeFileSync(join(staticDir, "graphiql.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`GraphiQL assets in ${target}:`, packages);
