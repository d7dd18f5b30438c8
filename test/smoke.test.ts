import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";

it("ingests and reads back one structured event", async () => {
  const res = await exports.default.fetch("http://x/v1/topics/events/events", {
    method: "POST",
    headers: { "content-type": "application/cloudevents+json" },
    body: JSON.stringify({ specversion: "1.0", id: "a1", source: "/test", type: "t", data: { n: 1 } }),
  });
  const body = await res.text();
  console.log(res.status, body);
  expect(res.status).toBe(202);
});
