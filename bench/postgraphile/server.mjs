// PostGraphile v5 with the amber preset over DATABASE_URL's schema `public`: the comparison
// for bench/fleet.sh, started by bench/postgraphile.sh.
//
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/db PORT=18182 node server.mjs
//
// Production settings: GraphiQL, watch mode and explain off, GRAPHILE_ENV=production (set
// below if unset, so grafast runs without its development checks). node-postgres through
// @dataplan/pg's adaptor, one pool of PG_POOL_MAX connections (default 10, as autoglue's
// default database pool), no TLS. Listens on 127.0.0.1 only; prints "listening" when ready.
process.env.GRAPHILE_ENV ??= "production";
process.env.NODE_ENV ??= "production";

const { createServer } = await import("node:http");
const { default: pg } = await import("pg");
const { postgraphile } = await import("postgraphile");
const { PostGraphileAmberPreset } = await import("postgraphile/presets/amber");
const { grafserv } = await import("postgraphile/grafserv/node");
const { makePgService } = await import("@dataplan/pg/adaptors/pg");

const connectionString = process.env.DATABASE_URL;
if (!connectionString) throw new Error("DATABASE_URL is not set");
const port = Number(process.env.PORT ?? 18182);

const pool = new pg.Pool({
  connectionString,
  ssl: false,
  max: Number(process.env.PG_POOL_MAX ?? 10),
});
pool.on("error", (err) => console.error("pg pool:", err));

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [makePgService({ pool, schemas: ["public"] })],
  grafserv: { host: "127.0.0.1", port, graphqlPath: "/graphql", graphiql: false, watch: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
// Build the schema before listening, so the first request does not pay for introspection.
await pgl.getSchema();

const server = createServer();
server.on("error", (err) => {
  console.error(err);
  process.exit(1);
});
await serv.addTo(server);
server.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));

const stop = async () => {
  server.close();
  await pgl.release();
  await pool.end();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
