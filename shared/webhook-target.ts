/**
 * Which webhook targets Eventline POSTs to (the SSRF guard; docs/security.md "Webhook targets").
 * By default only public ones: an IP literal in a loopback, private, unique-local, link-local or
 * other special-purpose range is refused, and so is a name that is not public by its form
 * (`localhost`, `*.localhost`, internal-use suffixes such as `*.local` and `*.internal`, and
 * single-label names). The check runs on the URL as the WHATWG parser reads it — the parser
 * fetch uses too — so every spelling of an IPv4 address (`2130706433`, `0x7f.1`, `0177.0.0.1`,
 * `127.1`) is its dotted form, and IPv6 forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`,
 * compatible, NAT64, 6to4) are judged by the address they embed.
 *
 * A Worker cannot resolve DNS, so a public-looking name is judged by its name only; what it
 * resolves to is not checked here (see the docs).
 *
 * Exceptions are explicit, in the `EVENTLINE_WEBHOOK_ALLOW` var: a comma- or space-separated list of
 * `loopback` (127.0.0.0/8, ::1, localhost, *.localhost), `private` (10/8, 172.16/12, 192.168/16,
 * 100.64/10, fc00::/7, fec0::/10), IP addresses or CIDRs (`10.1.0.0/16`, `fd00::/8`), host names
 * (`hooks.corp.example`) and name suffixes (`*.corp.example`). Empty (the default): nothing that is
 * not public. An entry it cannot read is ignored (so it allows nothing) and reported in `invalid`.
 */

export type TargetKind = "public" | "loopback" | "private" | "link-local" | "reserved" | "internal-name";

interface Address {
  v: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: number[];
}

interface Cidr extends Address {
  bits: number;
}

export interface WebhookAllow {
  loopback: boolean;
  private: boolean;
  cidrs: Cidr[];
  hosts: string[];
  /** From `*.example.com` entries: ".example.com". */
  suffixes: string[];
  /** Entries that were not understood (they allow nothing). */
  invalid: string[];
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseIpv4(text: string): number[] | undefined {
  const m = IPV4.exec(text);
  if (m === null) return undefined;
  const bytes = m.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

function parseIpv6(text: string): number[] | undefined {
  if (!/^[0-9a-f:.]+$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string | undefined): number[] | undefined => {
    if (part === undefined || part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (const [i, piece] of pieces.entries()) {
      const v4 = i === pieces.length - 1 && piece.includes(".") ? parseIpv4(piece) : undefined;
      if (v4 !== undefined) {
        out.push(...v4);
        continue;
      }
      if (!/^[0-9a-f]{1,4}$/.test(piece)) return undefined;
      const n = Number.parseInt(piece, 16);
      out.push(n >> 8, n & 0xff);
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (head === undefined || tail === undefined) return undefined;
  if (halves.length === 1) return head.length === 16 ? head : undefined;
  const fill = 16 - head.length - tail.length;
  return fill >= 2 ? [...head, ...Array.from({ length: fill }, () => 0), ...tail] : undefined;
}

/** An IP literal (IPv6 with or without brackets), or undefined when `text` is not one. */
function parseAddress(text: string): Address | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { v: 4, bytes: v4 };
  const v6 = parseIpv6(text.replace(/^\[(.*)\]$/, "$1"));
  return v6 === undefined ? undefined : { v: 6, bytes: v6 };
}

const cidr = (text: string, bits: number): Cidr => {
  const address = parseAddress(text);
  if (address === undefined) throw new Error(`bad range ${text}`);
  return { ...address, bits };
};

const V4_RANGES: [Cidr, TargetKind][] = [
  // "This network": 0.0.0.0 reaches the local host on common systems.
  [cidr("0.0.0.0", 8), "reserved"],
  [cidr("10.0.0.0", 8), "private"],
  // Shared address space (carrier-grade NAT): not routable on the public Internet.
  [cidr("100.64.0.0", 10), "private"],
  [cidr("127.0.0.0", 8), "loopback"],
  // Cloud instance metadata (169.254.169.254) lives here.
  [cidr("169.254.0.0", 16), "link-local"],
  [cidr("172.16.0.0", 12), "private"],
  [cidr("192.0.0.0", 24), "reserved"],
  [cidr("192.0.2.0", 24), "reserved"],
  [cidr("192.88.99.0", 24), "reserved"],
  [cidr("192.168.0.0", 16), "private"],
  [cidr("198.18.0.0", 15), "reserved"],
  [cidr("198.51.100.0", 24), "reserved"],
  [cidr("203.0.113.0", 24), "reserved"],
  // Multicast, then the reserved 240/4 block with the broadcast address.
  [cidr("224.0.0.0", 4), "reserved"],
  [cidr("240.0.0.0", 4), "reserved"],
];

const UNSPECIFIED_V6 = cidr("::", 128);
const LOOPBACK_V6 = cidr("::1", 128);

const V6_RANGES: [Cidr, TargetKind][] = [
  [UNSPECIFIED_V6, "reserved"],
  [LOOPBACK_V6, "loopback"],
  [cidr("100::", 64), "reserved"],
  // Local-use NAT64 (RFC 8215): translated inside the operator's own network.
  [cidr("64:ff9b:1::", 48), "private"],
  // Teredo hides an IPv4 address behind a relay; documentation addresses are never real targets.
  [cidr("2001::", 32), "reserved"],
  [cidr("2001:db8::", 32), "reserved"],
  [cidr("fc00::", 7), "private"],
  [cidr("fe80::", 10), "link-local"],
  [cidr("fec0::", 10), "private"],
  [cidr("ff00::", 8), "reserved"],
];

const MAPPED = cidr("::ffff:0:0", 96);

/** IPv6 ranges whose addresses carry an IPv4 address, and where: mapped, compatible, NAT64, 6to4. */
const EMBEDDING: [Cidr, number][] = [
  [MAPPED, 12],
  [cidr("::", 96), 12],
  [cidr("64:ff9b::", 96), 12],
  [cidr("2002::", 16), 2],
];

/** Internal-use name suffixes (RFC 6762 .local, RFC 8375 home.arpa, ICANN's .internal, common private ones). */
const INTERNAL_SUFFIXES = ["local", "internal", "localdomain", "lan", "home.arpa", "intranet", "corp"];

function inRange(address: Address, range: Cidr): boolean {
  if (address.v !== range.v) return false;
  for (let bit = 0; bit < range.bits; bit += 8) {
    const left = Math.min(8, range.bits - bit);
    const mask = (0xff << (8 - left)) & 0xff;
    if (((address.bytes[bit / 8] ?? 0) & mask) !== ((range.bytes[bit / 8] ?? 0) & mask)) return false;
  }
  return true;
}

/** The IPv4 address an IPv6 address embeds, if it is of a form that does. */
function embeddedIpv4(address: Address): Address | undefined {
  if (address.v !== 6) return undefined;
  // :: and ::1 sit inside the compatible range but are themselves.
  if (inRange(address, UNSPECIFIED_V6) || inRange(address, LOOPBACK_V6)) return undefined;
  const found = EMBEDDING.find(([range]) => inRange(address, range));
  return found === undefined ? undefined : { v: 4, bytes: address.bytes.slice(found[1], found[1] + 4) };
}

function classifyAddress(address: Address): TargetKind {
  const embedded = embeddedIpv4(address);
  if (embedded !== undefined) return classifyAddress(embedded);
  const ranges = address.v === 4 ? V4_RANGES : V6_RANGES;
  return ranges.find(([range]) => inRange(address, range))?.[1] ?? "public";
}

/** A host name's kind by its form alone (`host` lower-case, without trailing dots). */
function classifyName(host: string): TargetKind {
  if (host === "localhost" || host.endsWith(".localhost")) return "loopback";
  if (!host.includes(".")) return "internal-name";
  return INTERNAL_SUFFIXES.some((s) => host === s || host.endsWith(`.${s}`)) ? "internal-name" : "public";
}

/** The host of a parsed URL, normalized: lower-case, no brackets or trailing dots. */
const hostOf = (url: URL): string =>
  url.hostname
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.+$/, "");

const HOST_NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** Reads EVENTLINE_WEBHOOK_ALLOW (see the module comment). */
export function parseWebhookAllow(value: string | undefined): WebhookAllow {
  const allow: WebhookAllow = { loopback: false, private: false, cidrs: [], hosts: [], suffixes: [], invalid: [] };
  for (const entry of (value ?? "").toLowerCase().split(/[\s,]+/)) {
    if (entry === "" || entry === "none") continue;
    if (entry === "loopback" || entry === "private") {
      allow[entry] = true;
      continue;
    }
    const [text = "", bits, ...extra] = entry.split("/");
    const address = parseAddress(text);
    if (address !== undefined) {
      const max = address.v === 4 ? 32 : 128;
      const n = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : -1;
      if (extra.length === 0 && n >= 0 && n <= max) allow.cidrs.push({ ...address, bits: n });
      else allow.invalid.push(entry);
      continue;
    }
    const name = entry.replace(/\.+$/, "");
    if (name.startsWith("*.") && HOST_NAME.test(name.slice(2))) allow.suffixes.push(name.slice(1));
    else if (HOST_NAME.test(name) && !/^[\d.]+$/.test(name)) allow.hosts.push(name);
    else allow.invalid.push(entry);
  }
  return allow;
}

const KIND_TEXT: Record<Exclude<TargetKind, "public">, string> = {
  loopback: "a loopback address",
  private: "a private-network address",
  "link-local": "a link-local address (where cloud metadata services answer)",
  reserved: "a special-purpose (reserved, multicast or unspecified) address",
  "internal-name": "an internal name (a single label or an internal-use suffix such as .local or .internal)",
};

/**
 * Why Eventline refuses to POST to `url` under `allow`, or undefined when it may. The reason names
 * the host only (never the path or query, which may hold credentials).
 */
export function webhookTargetRefusal(url: string, allow: WebhookAllow): string | undefined {
  const parsed = URL.parse(url);
  if (parsed === null) return "the URL does not parse";
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return `${parsed.protocol} is not http(s)`;
  const host = hostOf(parsed);
  const address = parseAddress(host);
  if (address === undefined) {
    if (allow.hosts.includes(host) || allow.suffixes.some((s) => host.endsWith(s))) return undefined;
    const kind = classifyName(host);
    if (kind === "public" || (kind === "loopback" && allow.loopback)) return undefined;
    return `${host} is ${KIND_TEXT[kind]}`;
  }
  const kind = classifyAddress(address);
  if (kind === "public") return undefined;
  // An IPv4-mapped address is the IPv4 address itself: the same allow entries apply.
  const mapped = inRange(address, MAPPED) ? embeddedIpv4(address) : undefined;
  const effective = mapped ?? address;
  if (allow.cidrs.some((range) => inRange(effective, range))) return undefined;
  if ((kind === "loopback" && allow.loopback) || (kind === "private" && allow.private)) return undefined;
  return `${address.v === 6 ? `[${host}]` : host} is ${KIND_TEXT[kind]}`;
}

/** The parsed allow list of the last value seen (the var is the same for an isolate's life). */
let memo: { value: string | undefined; allow: WebhookAllow } | undefined;

/** An EVENTLINE_WEBHOOK_ALLOW value, parsed (once per value). */
export function webhookAllowOf(value: string | undefined): WebhookAllow {
  if (memo === undefined || memo.value !== value) memo = { value, allow: parseWebhookAllow(value) };
  return memo.allow;
}
