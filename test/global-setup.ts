import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";

/**
 * A webhook receiver on loopback for the webhook delivery tests (runs in Node, outside workerd).
 * POST /hooks/<name> records the request and answers with the status set for <name>
 * (POST /control/<name>?status=500; default 200), and a `location` header when one was set with
 * it (`&location=/hooks/other`, for redirects); with `&times=N` the status answers only the next N
 * requests, then 200 again (so a test fails exactly N attempts, whatever its polling pace);
 * GET /control/<name> returns what was received.
 */

declare module "vitest" {
  interface ProvidedContext {
    webhookPort: number;
  }
}

interface Received {
  headers: Record<string, string>;
  body: string;
  at: number;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export default async function setup(project: TestProject) {
  const received = new Map<string, Received[]>();
  const status = new Map<string, { code: number; location: string | null; times: number | null }>();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const [, kind, name = ""] = url.pathname.split("/");
    const body = await readBody(req);
    if (kind === "hooks" && req.method === "POST") {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      received.set(name, [...(received.get(name) ?? []), { headers, body, at: Date.now() }]);
      let answer = status.get(name) ?? { code: 200, location: null, times: null };
      if (answer.times !== null) {
        if (answer.times <= 0) answer = { code: 200, location: null, times: null };
        else status.set(name, { ...answer, times: answer.times - 1 });
      }
      res.writeHead(answer.code, answer.location === null ? {} : { location: answer.location }).end();
      return;
    }
    if (kind === "control" && req.method === "POST") {
      const times = url.searchParams.get("times");
      status.set(name, {
        code: Number(url.searchParams.get("status") ?? "200"),
        location: url.searchParams.get("location"),
        times: times === null ? null : Number(times),
      });
      res.writeHead(204).end();
      return;
    }
    if (kind === "control" && req.method === "GET") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(received.get(name) ?? []));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  project.provide("webhookPort", (server.address() as AddressInfo).port);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}
