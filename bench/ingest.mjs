// The ingest scenarios of `npm run bench` (bench/run.mjs): the platform's single-event and batch
// ingest, the bare baseline's, and the variants' (metrics off, Miniflare's rate limiter), plus the
// preflight that checks the stack before minutes are spent measuring it.
import { authFetch } from "./auth.mjs";
import { BATCH, batchJson, eventJson, keysCoveringPartitions, STRUCTURED } from "./load.mjs";

// The ingest scenarios use `orders`: no subscription routes it, so they measure the ingest path
// (with per-type data validation) and not the in-process consumers, which share workerd here.
// Fan-out is measured by the end-to-end scenario on `events`.
export const TOPIC = "orders";
export const PARTITIONS = 4;
const INGEST = `/v1/topics/${TOPIC}/events`;
export const ONE_KEY = "bench";
export const SPREAD_KEYS = keysCoveringPartitions(PARTITIONS);

export function scenarios(urls, n) {
  const ingest = new URL(INGEST, urls.platform).href;
  const ingestOff = new URL(INGEST, urls.platformMetricsOff).href;
  const ingestEmulated = new URL(INGEST, urls.platformEmulatedRateLimit).href;
  let spread = 0;
  const scenario = (label, target, url, contentType, eventsPerRequest, makeBody) => ({
    label,
    target,
    url,
    contentType,
    eventsPerRequest,
    makeBody,
  });
  return {
    ingestSingle: scenario("ingest single event, 1 partition", "platform", ingest, STRUCTURED, 1, () => eventJson(ONE_KEY)),
    baselineSingle: scenario("baseline POST /one", "baseline", new URL("/one", urls.baseline).href, STRUCTURED, 1, () =>
      eventJson(ONE_KEY),
    ),
    ingestBatch: scenario(`ingest batch of ${n}, 1 partition`, "platform", ingest, BATCH, n, () => batchJson(ONE_KEY, n)),
    baselineBatch: scenario(`baseline POST /batch (${n} rows)`, "baseline", new URL("/batch", urls.baseline).href, BATCH, n, () =>
      batchJson(ONE_KEY, n),
    ),
    ingestSingleOff: scenario("ingest single event, 1 partition, metrics off", "platform-metrics-off", ingestOff, STRUCTURED, 1, () =>
      eventJson(ONE_KEY),
    ),
    ingestBatchOff: scenario(`ingest batch of ${n}, 1 partition, metrics off`, "platform-metrics-off", ingestOff, BATCH, n, () =>
      batchJson(ONE_KEY, n),
    ),
    ingestSingleEmulatedRateLimit: scenario(
      "ingest single event, 1 partition, Miniflare's rate limiter",
      "platform-emulated-ratelimit",
      ingestEmulated,
      STRUCTURED,
      1,
      () => eventJson(ONE_KEY),
    ),
    ingestSpread: scenario(`ingest single event, ${PARTITIONS} partitions`, "platform", ingest, STRUCTURED, 1, () =>
      eventJson(SPREAD_KEYS[spread++ % PARTITIONS]),
    ),
  };
}

async function post(url, contentType, body) {
  const res = await authFetch(url, { method: "POST", headers: { "content-type": contentType }, body });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`preflight POST ${url} → ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/** Fails fast, with the server's own words, before spending minutes on a broken setup. */
export async function preflight(urls) {
  const one = await post(new URL(INGEST, urls.platform), STRUCTURED, eventJson(ONE_KEY));
  if (one.events?.[0]?.duplicate !== false) throw new Error(`preflight: expected a fresh append, got ${JSON.stringify(one)}`);
  const spread = await post(new URL(INGEST, urls.platform), BATCH, `[${SPREAD_KEYS.map((k) => eventJson(k)).join(",")}]`);
  const hit = new Set(spread.events.map((e) => e.partition));
  if (hit.size !== PARTITIONS) throw new Error(`preflight: keys ${SPREAD_KEYS} hit partitions ${[...hit]}, expected all ${PARTITIONS}`);
  await post(new URL(INGEST, urls.platformMetricsOff), STRUCTURED, eventJson(ONE_KEY));
  await post(new URL(INGEST, urls.platformEmulatedRateLimit), STRUCTURED, eventJson(ONE_KEY));
  // The ingest scenarios measure ingest: their events must route nowhere (no outbox rows), whatever the config declares.
  const routed = (await (await authFetch(new URL(`/v1/topics/${TOPIC}`, urls.platform))).json()).partitionStats.flatMap((p) =>
    Object.keys(p.routed),
  );
  if (routed.length > 0)
    throw new Error(`preflight: the ingest events are routed to ${[...new Set(routed)]}; pick a type none of them takes`);
  await post(new URL("/one", urls.baseline), STRUCTURED, eventJson(ONE_KEY));
  await post(new URL("/batch", urls.baseline), BATCH, batchJson(ONE_KEY, 2));
  return { platform: 1 + PARTITIONS, "platform-metrics-off": 1, "platform-emulated-ratelimit": 1 };
}
