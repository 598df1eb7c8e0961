// `pnpm start`: serves the coordinator on PORT (default 8080) at HOST (default 127.0.0.1).
import { serve } from "@hono/node-server";
import { createApp } from "./app.ts";

const port = Number(process.env.PORT ?? 8080);
const hostname = process.env.HOST ?? "127.0.0.1";
const server = serve({ fetch: createApp().fetch, port, hostname }, (info) => {
  console.log(
    `Pangea coordinator listening on http://${hostname === "0.0.0.0" ? "localhost" : hostname}:${info.port}`,
  );
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
