// `pnpm start`: the coordinator with its web UI and the demo run (the same as `pnpm pangea serve`).
import { main } from "./cli.ts";

await main(["serve"]);
