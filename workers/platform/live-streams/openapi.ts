import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { problemResponse } from "../../../shared/api-schemas";
import type { AppEnv } from "../context";

/**
 * The OpenAPI entries of the Durable Streams routes. Their handlers are raw (bodies of any content
 * type, SSE, a path of several segments), so these entries are registered for the document only,
 * beside the handlers in routes.ts, and say what the protocol says (docs/live-streams.md).
 */

const NameParam = z
  .string()
  .min(1)
  .openapi({
    param: { name: "name", in: "path" },
    example: "chat/room-1",
    description: "Stream name: a-z 0-9 . _ - : in segments separated by `/` (the grant resource is `stream/<name>`)",
  });

const params = z.object({ name: NameParam });

const offsetHeader = {
  "Stream-Next-Offset": {
    description: "The offset after the last byte of the stream (or of this answer)",
    schema: { type: "string" as const },
  },
};

const query = z.object({
  offset: z
    .string()
    .optional()
    .openapi({
      param: { name: "offset", in: "query" },
      description: "`-1` (the beginning, default), `now` (the tail) or an offset returned before",
    }),
  live: z
    .enum(["long-poll", "sse"])
    .optional()
    .openapi({
      param: { name: "live", in: "query" },
      description: "Wait for new data (long-poll) or stream it as Server-Sent Events; needs `offset`",
    }),
  cursor: z
    .string()
    .optional()
    .openapi({ param: { name: "cursor", in: "query" }, description: "The last `Stream-Cursor` seen (live modes)" }),
});

const anyBody = { content: { "*/*": { schema: z.string().openapi({ format: "binary" }) } } };

export function documentLiveStreamRoutes(app: OpenAPIHono<AppEnv>): void {
  const path = "/v1/stream/{name}";
  const tags = ["Durable Streams"];
  app.openAPIRegistry.registerPath(
    createRoute({
      method: "put",
      path,
      tags,
      summary: "Create a stream (or fork one with Stream-Forked-From); idempotent for the same configuration",
      description:
        "Headers: `Content-Type` (default application/octet-stream), `Stream-TTL` (seconds, sliding) or `Stream-Expires-At` (RFC 3339), `Stream-Closed: true`, `Stream-Forked-From` / `Stream-Fork-Offset` / `Stream-Fork-Sub-Offset`. An initial body is the first append. Needs `produce` on `stream/<name>` (and `consume` on the source of a fork).",
      request: { params, body: { ...anyBody, required: false } },
      responses: {
        200: { description: "The stream exists with this configuration", headers: offsetHeader },
        201: { description: "Created (`Location` names it)", headers: offsetHeader },
        400: problemResponse("A malformed header or body"),
        404: problemResponse("The fork source does not exist"),
        409: problemResponse("The stream exists with another configuration, or its name is held by a deleted stream that forks still read"),
        413: problemResponse("Body over 1 MiB"),
      },
    }),
  );
  app.openAPIRegistry.registerPath(
    createRoute({
      method: "post",
      path,
      tags,
      summary: "Append to a stream (or close it with Stream-Closed: true)",
      description:
        "The body's `Content-Type` must be the stream's; JSON streams take a value or an array of values (flattened one level, `[]` refused). `Stream-Seq` (strictly increasing, compared as strings) and idempotent producers (`Producer-Id`, `Producer-Epoch`, `Producer-Seq`) make retries safe. Answered after the append is durable. Needs `produce` on `stream/<name>`.",
      request: { params, body: { ...anyBody, required: false } },
      responses: {
        200: { description: "Appended by an idempotent producer (`Producer-Epoch`, `Producer-Seq`)", headers: offsetHeader },
        204: { description: "Appended or closed; or a producer's duplicate (nothing written)", headers: offsetHeader },
        400: problemResponse("Empty body without Stream-Closed, missing Content-Type, invalid JSON, malformed headers"),
        403: problemResponse("A newer Producer-Epoch fenced this producer (`Producer-Epoch` names it)"),
        404: problemResponse("No such stream"),
        409: problemResponse(
          "Content type differs, the stream is closed (`Stream-Closed`), Stream-Seq not increasing, or a producer sequence gap",
        ),
        410: problemResponse("The stream was deleted (forks still read it)"),
        413: problemResponse("Body over 1 MiB"),
      },
    }),
  );
  app.openAPIRegistry.registerPath(
    createRoute({
      method: "get",
      path,
      tags,
      summary: "Read a stream from an offset: catch-up, long-poll or SSE (HEAD: metadata only)",
      description:
        "Catch-up answers carry `Stream-Next-Offset`, `Stream-Up-To-Date` at the tail, `Stream-Closed` at the tail of a closed stream, and an `ETag` (`If-None-Match` → 304). JSON streams answer one array. `live=long-poll` waits for data (204 when none came); `live=sse` sends `data` and `control` events. Needs `consume` on `stream/<name>`.",
      request: { params, query },
      responses: {
        200: { description: "Data (or an empty body at the tail)", headers: offsetHeader, ...anyBody },
        204: { description: "Long-poll: no new data before the wait ended, or the stream is closed", headers: offsetHeader },
        304: { description: "Not modified (`If-None-Match`)" },
        400: problemResponse("Malformed or unknown offset, a live mode without an offset"),
        404: problemResponse("No such stream"),
        410: problemResponse("The stream was deleted (forks still read it)"),
      },
    }),
  );
  app.openAPIRegistry.registerPath(
    createRoute({
      method: "delete",
      path,
      tags,
      summary: "Delete a stream (kept as 410 while forks still read it)",
      description: "Needs `admin` on `stream/<name>`.",
      request: { params },
      responses: {
        204: { description: "Deleted" },
        404: problemResponse("No such stream"),
        410: problemResponse("Already deleted; forks still read it"),
      },
    }),
  );
}
