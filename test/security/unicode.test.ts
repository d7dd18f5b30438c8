import { describe, expect, it } from "vitest";
import { allHeads, expectProblem, postStructured, request } from "../helpers";
import { auditOf, dataHeads, jsonInit } from "./helpers";

/**
 * Strings that become keys (event attributes, names in paths, names and ids in admin and command
 * bodies, audit subjects) are well-formed Unicode. A lone UTF-16 surrogate has no UTF-8 form:
 * SQLite and D1 store bytes that read back as another string, so a key made from it can neither be
 * found again nor erased. Event attributes are covered in encryption-unicode.test.ts (where it broke
 * decrypted reads) and test/unit/cloudevents.test.ts.
 */

/** `text` with a lone low surrogate: JSON.stringify sends it as the escape `\udfff`. */
const lone = (text: string) => `${text}\udfff`;

async function keyCount(): Promise<number> {
  const res = await request("/v1/keys");
  expect(res.status).toBe(200);
  return ((await res.json()) as { keys: unknown[] }).keys.length;
}

describe("admin and command bodies", () => {
  it("a lone surrogate anywhere in a JSON body is a 400 naming where, before anything is created", async () => {
    const keysBefore = await keyCount();
    const key = await expectProblem(await request("/v1/keys", jsonInit({ name: lone("svc"), grants: ["produce:events"] })), 400);
    expect(key.code).toBe("malformed_request");
    expect(key.issues).toEqual([{ path: "/name", message: expect.stringContaining("lone UTF-16 surrogate") }]);
    expect(await keyCount()).toBe(keysBefore);
    // Refused with the body's other malformed input (depth, size), before the route and its audit record.
    expect(await auditOf(key.requestId)).toEqual([]);

    const heads = await allHeads();
    const order = await expectProblem(
      await request("/v1/orders", jsonInit({ customerId: lone("c"), currency: "EUR", lines: [{ sku: "A", quantity: 1, unitPrice: 100 }] })),
      400,
    );
    expect(order.issues?.map((i) => i.path)).toEqual(["/customerId"]);
    const nested = await expectProblem(
      await request("/v1/orders", jsonInit({ customerId: "c", currency: "EUR", lines: [{ sku: lone("A"), quantity: 1, unitPrice: 100 }] })),
      400,
    );
    expect(nested.issues?.map((i) => i.path)).toEqual(["/lines/0/sku"]);
    expect(await allHeads()).toEqual(heads);
  });

  it("order events posted to the orders topic: customerId and sku are keys of the read models, so their schema refuses a lone surrogate", async () => {
    const heads = await dataHeads();
    const res = await postStructured("orders", {
      specversion: "1.0",
      id: crypto.randomUUID(),
      source: "/tests",
      type: "orders.placed",
      subject: "ord-unicode",
      data: { orderId: "ord-unicode", customerId: lone("c"), currency: "EUR", lines: [{ sku: lone("A"), quantity: 1, unitPrice: 1 }] },
    });
    const problem = await expectProblem(res, 422);
    expect(problem.code).toBe("schema_violation");
    expect(problem.issues?.map((i) => i.path).sort()).toEqual(["/data/customerId", "/data/lines/0/sku"]);
    expect(await dataHeads()).toEqual(heads);
  });
});

describe("names in paths", () => {
  it("percent-encoded bytes that are not UTF-8 are a 400, not taken as their raw text", async () => {
    for (const path of ["/v1/orders/ord%ED%BF%BF", "/v1/topics/events/streams/s%C0%AF", "/v1/customers/c%FF/summary"]) {
      const problem = await expectProblem(await request(path), 400);
      expect(problem.code).toBe("invalid_parameter");
      expect(problem.issues?.[0]?.message).toContain("does not decode to well-formed Unicode");
    }
    // Well-formed encodings reach their routes as before.
    expect((await request("/v1/topics/events/streams/caf%C3%A9-%F0%9F%98%80")).status).toBe(200);
  });
});

describe("audit subjects", () => {
  it("a resource cut at 512 characters is not cut inside a surrogate pair (it is the record's subject, a key)", async () => {
    // "subject:" + 503 characters puts the emoji's first half at position 512.
    const subject = `${"a".repeat(503)}😀tail`;
    const res = await request(`/v1/subjects/${encodeURIComponent(subject)}/keys`, { method: "DELETE" });
    expect(res.status, await res.text()).toBe(200);
    const [record] = await auditOf(res.headers.get("x-request-id") ?? "", "subjects.shred");
    expect(record?.resource.startsWith(`subject:${"a".repeat(503)}`)).toBe(true);
    expect(record?.resource).toContain("…(truncated, ");
    expect(record?.resource.isWellFormed()).toBe(true);
  });
});
