// @ts-check
/** `subscriptions`, `subscriptions rotate-secret <name>`, `dlq list <subscription>`, `dlq redrive <subscription>`. */
import { CliError, EXIT, seg, UsageError } from "./api.mjs";
import { command, durationOption, str } from "./cli.mjs";
import { DEAD_LETTER_PAGE_DETAILS, DEAD_LETTER_PAGE_OPTIONS, deadLetterPages } from "./dead-letters.mjs";
import { num, printJson, table, truncate } from "./ui.mjs";

/**
 * @typedef {{ name: string, topic: string, kind: string, ordering: string, lag: number, dlqDepth: number,
 *   circuit: { state: string }, counts: { handled: number, retried: number, deadLettered: number } }} Subscription
 * @typedef {{ id: string, topic: string, partition: number, sequence: number, eventId: string | null, reason: string,
 *   error: string, attempts: number, lastFailureAt: string, deadLetteredAt: string }} DeadLetter
 */

/** How often `subscriptions --wait` asks again. */
const WAIT_POLL_MS = 250;

/**
 * The subscriptions once none lags (every event routed to them handled or dead-lettered), asking
 * every WAIT_POLL_MS for up to `seconds`; a CliError (exit 1) naming the laggards after that.
 * @param {import("./api.mjs").Api} api @param {number} seconds
 * @returns {Promise<{ subscriptions: Subscription[] }>}
 */
async function settled(api, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    /** @type {{ subscriptions: Subscription[] }} */
    const body = await api("GET", "/v1/subscriptions");
    const lagging = body.subscriptions.filter((s) => s.lag > 0);
    if (lagging.length === 0) return body;
    if (Date.now() >= deadline) {
      const names = lagging.map((s) => `${s.name} (lag ${num(s.lag)})`).join(", ");
      throw new CliError(`still lagging after ${seconds} s: ${names}`, EXIT.api);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(WAIT_POLL_MS, Math.max(0, deadline - Date.now()))));
  }
}

export const subscriptions = command({
  name: "subscriptions",
  summary: "Subscriptions: topic, kind, ordering, lag, DLQ depth, circuit state, handled/retried/dead-lettered",
  details:
    "--wait first waits until no subscription lags: every event routed to one is handled or dead-lettered (its retries included), so a script can publish, wait, then look. It exits 1 if they still lag when the time is up.",
  options: {
    wait: {
      type: "string",
      arg: "DURATION",
      desc: "wait up to DURATION (e.g. 30s, 2m; at most 1h) until no subscription lags, then print",
    },
  },
  async run({ api, json, values }) {
    const wait = durationOption(values.wait, "--wait", { max: 3600 });
    /** @type {{ subscriptions: Subscription[] }} */
    const body = wait === undefined ? await api("GET", "/v1/subscriptions") : await settled(api, wait);
    if (json) return printJson(body);
    const rows = body.subscriptions.map((s) => [
      s.name,
      s.topic,
      s.kind,
      s.ordering,
      s.lag,
      s.dlqDepth,
      s.circuit.state,
      s.counts.handled,
      s.counts.retried,
      s.counts.deadLettered,
    ]);
    console.log(table(["NAME", "TOPIC", "KIND", "ORDERING", "LAG", "DLQ", "CIRCUIT", "HANDLED", "RETRIED", "DEAD-LETTERED"], rows));
    return 0;
  },
});

/** Longest signing-secret overlap (the API's limit): 7 days. */
const MAX_OVERLAP_SECONDS = 7 * 86_400;

export const subscriptionsRotateSecret = command({
  name: "subscriptions rotate-secret",
  args: ["<name>"],
  summary: "Rotate a webhook subscription's signing secret; the new secret is printed once",
  details:
    "Until the overlap ends every delivery is signed with the old and the new secret, so receivers can switch to the new one without a failed delivery; then with the new one only. --overlap 0 drops the old secret at once (for a leaked secret).",
  options: {
    overlap: {
      type: "string",
      arg: "DURATION",
      desc: "how long deliveries stay signed with the old secret too: 0 to 7d, e.g. 0, 90s, 30m, 24h (default)",
    },
  },
  async run({ api, json, values, args: [name = ""] }) {
    const overlapSeconds = durationOption(values.overlap, "--overlap", { max: MAX_OVERLAP_SECONDS });
    /** @type {{ name: string, topic: string, webhook: { secret: string, previousSecretExpiresAt: string | null } }} */
    const res = await api("POST", `/v1/subscriptions/${seg(name)}/secret:rotate`, {
      body: overlapSeconds === undefined ? {} : { overlapSeconds },
    });
    if (json) return printJson(res);
    console.log(`Rotated the signing secret of ${res.name} (topic ${res.topic}):`);
    console.log(`\n  ${res.webhook.secret}\n`);
    console.log(
      res.webhook.previousSecretExpiresAt
        ? `Deliveries are signed with the old and the new secret until ${res.webhook.previousSecretExpiresAt}, then with the new one only: give the receiver the new secret before then.`
        : "The old secret is dropped: deliveries are signed with the new one only (within 5 s).",
    );
    console.log("Store it now: it is not shown again.");
    return 0;
  },
});

export const dlqList = command({
  name: "dlq list",
  args: ["<subscription>"],
  summary: "A subscription's dead letters, oldest first",
  details: DEAD_LETTER_PAGE_DETAILS,
  options: DEAD_LETTER_PAGE_OPTIONS,
  async run({ api, json, values, args: [name = ""] }) {
    /** @type {{ letters: DeadLetter[], page: { total: number, next: string | null }, body: unknown }} */
    const { letters, page, body } = await deadLetterPages(api, `/v1/subscriptions/${seg(name)}/dlq`, values);
    if (json) return printJson(body);
    if (letters.length === 0) {
      console.log(`no dead letters for ${name}${values.after ? " after that cursor" : ""} (total ${num(page.total)})`);
      return 0;
    }
    const rows = letters.map((d) => [
      d.id,
      `${d.partition}:${d.sequence}`,
      d.eventId ?? "-",
      d.reason,
      d.attempts,
      d.lastFailureAt,
      truncate(d.error.replace(/\s+/g, " "), 60),
    ]);
    console.log(table(["ID", "POSITION", "EVENT", "REASON", "ATTEMPTS", "LAST FAILURE", "ERROR"], rows));
    console.log(`\n${num(letters.length)} of ${num(page.total)} dead letters${page.next ? `; next page: --after ${page.next}` : ""}`);
    return 0;
  },
});

export const dlqRedrive = command({
  name: "dlq redrive",
  args: ["<subscription>"],
  summary: "Re-enqueue dead letters (all, or --ids) to the subscription's queue",
  details: "A letter leaves the DLQ once the queue accepted it; the consumer applies it exactly once.",
  options: { ids: { type: "string", arg: "ID,ID", desc: "comma-separated dead-letter ids (default: every letter)" } },
  async run({ api, json, values, args: [name = ""] }) {
    const ids = str(values.ids)
      ?.split(",")
      .map((id) => id.trim())
      .filter((id) => id !== "");
    if (ids !== undefined && ids.length === 0) throw new UsageError("--ids needs at least one id", "dlq redrive");
    /** @type {{ redriven: number, remaining: number, notFound: string[], skipped: string[] }} */
    const res = await api("POST", `/v1/subscriptions/${seg(name)}/dlq/redrive`, { body: ids ? { ids } : {} });
    if (json) return printJson(res);
    console.log(`redriven ${num(res.redriven)}, remaining ${num(res.remaining)}`);
    if (res.notFound.length > 0) console.log(`not found: ${res.notFound.join(", ")}`);
    if (res.skipped.length > 0) console.log(`skipped (not a delivery message, they stay): ${res.skipped.join(", ")}`);
    return 0;
  },
});
