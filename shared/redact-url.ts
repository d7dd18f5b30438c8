/**
 * Webhook URLs often carry credentials in their path or query (`/hook/<token>`, `?token=…`), and
 * userinfo (`https://user:pass@host/`). Anything that leaves the subscription record — delivery
 * errors, delivery attempts, dead letters, log lines, traces, audit records, the subscription
 * view of a non-admin — names a webhook only by its origin: `https://host:port/…`.
 */

/** `url` reduced to its origin (no userinfo, path, query or fragment), as `<origin>/…`. */
export function redactUrl(url: string): string {
  const parsed = URL.parse(url);
  // Opaque origins ("null") have nothing worth keeping.
  if (parsed === null || parsed.origin === "null") return "[webhook URL]";
  return `${parsed.origin}/…`;
}

/**
 * `text` with every spelling of `url` it may contain — as given, as the URL parser serializes it,
 * its path + query — replaced by the redacted form. For error texts from elsewhere (the runtime's
 * fetch errors, rows written before URLs were redacted).
 */
export function redactUrlIn(text: string, url: string): string {
  const parsed = URL.parse(url);
  const redacted = redactUrl(url);
  const spellings = new Set([url, parsed?.href ?? url]);
  if (parsed !== null) {
    const tail = `${parsed.pathname}${parsed.search}${parsed.hash}`;
    // A bare "/" says nothing; anything longer may hold the token.
    if (tail.length > 1) spellings.add(tail);
    if (parsed.username !== "" || parsed.password !== "")
      spellings.add(`${parsed.username}${parsed.password === "" ? "" : `:${parsed.password}`}@`);
  }
  let out = text;
  // Longest first, so the whole URL is replaced before its path alone would be.
  for (const spelling of [...spellings].sort((a, b) => b.length - a.length)) {
    if (spelling !== "") out = out.replaceAll(spelling, spelling === url || spelling === parsed?.href ? redacted : "…");
  }
  return out;
}
