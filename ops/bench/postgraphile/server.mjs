// PostGraphile v5 (one Node process) on corpgraph's database, for ops/bench/run.py.
// DATABASE_URL and PORT come from the environment.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";

const preset = {
  extends: [PostGraphileAmberPreset, PostGraphileConnectionFilterPreset],
  pgServices: [makePgService({ connectionString: process.env.DATABASE_URL, schemas: ["public"] })],
  grafserv: { graphiql: false },
  grafast: { explain: false },
  // filter on form_type, which has no index of its own (v5 hides such filters by default)
  disablePlugins: ["PgIndexBehaviorsPlugin"],
};

const server = createServer();
postgraphile(preset).createServ(grafserv).addTo(server);
server.listen(Number(process.env.PORT), "127.0.0.1");
