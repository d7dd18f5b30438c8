import { beforeAll, describe, expect, it } from "vitest";
import { anonymousRequest, expectProblem, requestAs } from "../helpers";
import { type CreatedTestKey, createTestKey, expectAudit, expectDeniedAudit } from "./helpers";

/**
 * Who may use the processors API (docs/processors.md "API"): a processor is a consumer of its
 * input topic, guarded like a subscription of it. Reading needs `consume` on the input topic (the
 * list shows only those); dead letters and reset need `admin` there; reset is audited.
 */

let eventsConsumer: CreatedTestKey;
let ordersConsumer: CreatedTestKey;
let ordersAdmin: CreatedTestKey;
let producer: CreatedTestKey;

beforeAll(async () => {
  [eventsConsumer, ordersConsumer, ordersAdmin, producer] = await Promise.all([
    createTestKey("proc-events-consumer", ["consume:events"]),
    createTestKey("proc-orders-consumer", ["consume:orders"]),
    createTestKey("proc-orders-admin", ["admin:orders"]),
    createTestKey("proc-producer", ["produce:orders"]),
  ]);
});

const names = async (res: Response) => ((await res.json()) as { processors: { name: string }[] }).processors.map((p) => p.name);

describe("processors access", () => {
  it("401 without a credential", async () => {
    for (const [path, method] of [
      ["/v1/processors", "GET"],
      ["/v1/processors/revenue-per-minute", "GET"],
      ["/v1/processors/revenue-per-minute/reset", "POST"],
      ["/v1/processors/revenue-per-minute/dead-letters", "GET"],
    ] as const) {
      expect((await expectProblem(await anonymousRequest(path, { method }), 401)).code).toBe("unauthorized");
    }
  });

  it("the list shows only processors on topics the caller may consume", async () => {
    const none = await requestAs(eventsConsumer.key, "/v1/processors");
    expect(none.status).toBe(200);
    expect(await names(none)).toEqual([]);
    const producerList = await requestAs(producer.key, "/v1/processors");
    expect(await names(producerList)).toEqual([]);
    const both = await requestAs(ordersConsumer.key, "/v1/processors");
    expect(await names(both)).toEqual(["revenue-per-minute", "unpaid-orders"]);
  });

  it("a processor's view needs consume on its input topic; without it 403, audited as access.denied", async () => {
    expect((await requestAs(ordersConsumer.key, "/v1/processors/revenue-per-minute")).status).toBe(200);
    expect((await requestAs(ordersAdmin.key, "/v1/processors/unpaid-orders")).status).toBe(200);
    const denied = await requestAs(eventsConsumer.key, "/v1/processors/revenue-per-minute");
    const problem = await expectProblem(denied, 403);
    expect(problem.code).toBe("forbidden");
    expect(problem.detail).toBe(
      `processor:revenue-per-minute does not exist or is on a topic where ${eventsConsumer.principal} lacks consume`,
    );
    await expectDeniedAudit(denied.headers.get("x-request-id") ?? "", {
      resource: "processor:revenue-per-minute",
      actor: { id: eventsConsumer.principal },
    });
    // A missing processor looks the same to a caller who may not consume every topic (nothing is told).
    const missing = await expectProblem(await requestAs(ordersConsumer.key, "/v1/processors/no-such-processor"), 403);
    expect(missing.detail).toBe(
      `processor:no-such-processor does not exist or is on a topic where ${ordersConsumer.principal} lacks consume`,
    );
  });

  it("dead letters need admin on the input topic", async () => {
    const consumerTry = await requestAs(ordersConsumer.key, "/v1/processors/revenue-per-minute/dead-letters");
    expect((await expectProblem(consumerTry, 403)).code).toBe("forbidden");
    const admin = await requestAs(ordersAdmin.key, "/v1/processors/revenue-per-minute/dead-letters");
    expect(admin.status).toBe(200);
    expect(await admin.json()).toEqual({ deadLetters: [], total: 0, next: null });
  });

  it("reset needs admin on the input topic: a consumer gets 403 (audited with the attempt), an admin 202 (audited)", async () => {
    const refused = await requestAs(ordersConsumer.key, "/v1/processors/unpaid-orders/reset", { method: "POST" });
    expect((await expectProblem(refused, 403)).code).toBe("forbidden");
    await expectDeniedAudit(refused.headers.get("x-request-id") ?? "", {
      resource: "processor:unpaid-orders",
      details: { attempted: "processors.reset" },
    });
    const producerTry = await requestAs(producer.key, "/v1/processors/unpaid-orders/reset", { method: "POST" });
    expect(producerTry.status).toBe(403);

    const done = await requestAs(ordersAdmin.key, "/v1/processors/unpaid-orders/reset", { method: "POST" });
    expect(done.status).toBe(202);
    const body = (await done.json()) as { processor: string; instances: unknown[]; events: number };
    expect(body).toMatchObject({ processor: "unpaid-orders", events: 0 });
    expect(body.instances).toHaveLength(4);
    await expectAudit(done.headers.get("x-request-id") ?? "", {
      action: "processors.reset",
      outcome: "success",
      resource: "processor:unpaid-orders",
      actor: { id: ordersAdmin.principal },
    });
  });
});
