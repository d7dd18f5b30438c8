// @ts-check
/** The paging of a dead-letter listing, shared by `dlq list <subscription>` and `processors late <name>`. */
import { intOption, str } from "./cli.mjs";

/**
 * A listing's paging options (the API's `limit` and `after`, and --all to follow the cursors).
 * @type {Record<string, import("./cli.mjs").OptionSpec>}
 */
export const DEAD_LETTER_PAGE_OPTIONS = {
  limit: { type: "string", arg: "N", desc: "page size, 1-500 (default 100)" },
  after: { type: "string", arg: "CURSOR", desc: "start after this cursor (the `next` of a previous page)" },
  all: { type: "boolean", desc: "fetch every page" },
};
export const DEAD_LETTER_PAGE_DETAILS =
  "Prints one page (--limit, default 100) and the cursor of the next; --all follows the cursors to the end.";

/**
 * One page of the dead letters at `path` (--limit, --after), or with --all every page from there;
 * `body` is what `--json` prints: the page as the API answered it, or all letters with no next cursor.
 * @template L
 * @param {import("./api.mjs").Api} api @param {string} path
 * @param {Record<string, string | boolean | undefined>} values
 * @returns {Promise<{ letters: L[], page: { deadLetters: L[], total: number, next: string | null }, body: unknown }>}
 */
export async function deadLetterPages(api, path, values) {
  const limit = intOption(values.limit, "--limit", { min: 1, max: 500 });
  let after = str(values.after);
  /** @type {L[]} */
  const letters = [];
  /** @type {{ deadLetters: L[], total: number, next: string | null }} */
  let page;
  do {
    const query = new URLSearchParams();
    if (limit !== undefined) query.set("limit", String(limit));
    if (after !== undefined) query.set("after", after);
    page = await api("GET", `${path}${query.size > 0 ? `?${query}` : ""}`);
    letters.push(...page.deadLetters);
    after = page.next ?? undefined;
  } while (values.all && page.next !== null);
  return { letters, page, body: values.all ? { deadLetters: letters, total: page.total, next: null } : page };
}
