// The edge's Worker entry. The HTTP API and /ws on Durable Objects come with the edge issue;
// until then it says so rather than pretending.
export { RunObject } from "./run-object.ts";

export default {
  fetch(): Response {
    return Response.json({ error: "the edge coordinator is not built yet" }, { status: 501 });
  },
};
