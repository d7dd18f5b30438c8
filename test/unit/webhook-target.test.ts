import { describe, expect, it } from "vitest";
import { redactUrl, redactUrlIn } from "../../shared/redact-url";
import { parseWebhookAllow, webhookTargetRefusal } from "../../shared/webhook-target";

/** The SSRF guard's classification of webhook targets and its allow list, and URL redaction. */

const NOTHING = parseWebhookAllow("");
const refusal = (url: string, allow = NOTHING) => webhookTargetRefusal(url, allow);

describe("webhook targets refused by default", () => {
  // [url, what the reason must say] — every spelling the URL parser (and so fetch) reads as the same host.
  const refused: [string, string][] = [
    ["http://127.0.0.1/hook", "127.0.0.1 is a loopback address"],
    ["http://127.0.0.2:8080/", "127.0.0.2 is a loopback address"],
    ["http://127.1/", "127.0.0.1 is a loopback address"],
    ["http://2130706433/", "127.0.0.1 is a loopback address"],
    ["http://0x7f000001/", "127.0.0.1 is a loopback address"],
    ["http://0x7f.1/", "127.0.0.1 is a loopback address"],
    ["http://0177.0.0.1/", "127.0.0.1 is a loopback address"],
    ["http://127.0.0.1./", "127.0.0.1 is a loopback address"],
    ["http://[::1]/", "[::1] is a loopback address"],
    ["http://[0:0:0:0:0:0:0:1]/", "[::1] is a loopback address"],
    ["http://[::ffff:127.0.0.1]/", "loopback"],
    ["http://[0:0:0:0:0:ffff:7f00:1]/", "loopback"],
    ["http://[::127.0.0.1]/", "loopback"],
    ["http://localhost/", "localhost is a loopback address"],
    ["http://LOCALHOST.:3000/", "localhost is a loopback address"],
    ["http://api.localhost/", "api.localhost is a loopback address"],
    ["http://%6c%6fcalhost/", "localhost is a loopback address"],
    ["http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "localhost is a loopback address"],
    ["http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"],
    ["http://2852039166/", "169.254.169.254 is a link-local address"],
    ["http://[::ffff:169.254.169.254]/", "link-local"],
    ["http://[64:ff9b::a9fe:a9fe]/", "link-local"],
    ["http://[2002:a9fe:a9fe::1]/", "link-local"],
    ["http://[fe80::1]/", "link-local"],
    ["http://10.0.0.1/", "10.0.0.1 is a private-network address"],
    ["http://172.16.0.1/", "private-network"],
    ["http://172.31.255.255/", "private-network"],
    ["http://192.168.1.10/", "private-network"],
    ["http://100.64.0.1/", "private-network"],
    ["http://[fd00::1]/", "[fd00::1] is a private-network address"],
    ["http://[fc00::1]/", "private-network"],
    ["http://[::ffff:10.1.2.3]/", "private-network"],
    ["http://0.0.0.0/", "0.0.0.0 is a special-purpose"],
    ["http://0/", "0.0.0.0 is a special-purpose"],
    ["http://[::]/", "special-purpose"],
    ["http://224.0.0.1/", "special-purpose"],
    ["http://255.255.255.255/", "special-purpose"],
    ["http://printer.local/", "printer.local is an internal name"],
    ["http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal is an internal name"],
    ["http://nas.home.arpa/", "internal name"],
    ["http://intranet/", "intranet is an internal name"],
    ["http://metadata/", "internal name"],
    ["ftp://hooks.example.com/", "ftp: is not http(s)"],
    ["not a url", "does not parse"],
  ];

  it.each(refused)("%s: %s", (url, reason) => {
    expect(refusal(url)).toContain(reason);
  });

  it("public targets pass: names, public addresses, and addresses just outside the ranges", () => {
    for (const url of [
      "https://hooks.example.com/p/s3cret?token=x",
      "https://localhost.example.com/",
      "http://8.8.8.8/",
      "http://172.32.0.1/",
      "http://100.128.0.1/",
      "http://169.253.255.255/",
      "http://[2606:4700:4700::1111]/",
      "http://[::ffff:8.8.8.8]/",
      "http://[64:ff9b::808:808]/",
    ]) {
      expect(refusal(url), url).toBeUndefined();
    }
  });

  it("a refusal names the host only, never the path or query", () => {
    const reason = refusal("http://user:pw@127.0.0.1/p/s3cret?token=t0k3n") ?? "";
    expect(reason).toBe("127.0.0.1 is a loopback address");
  });
});

describe("EVENTLINE_WEBHOOK_ALLOW", () => {
  it("loopback allows loopback addresses and names in every form, and nothing else", () => {
    const allow = parseWebhookAllow("loopback");
    for (const url of [
      "http://127.0.0.1:8787/h",
      "http://2130706433/",
      "http://[::1]/",
      "http://[::ffff:127.0.0.1]/",
      "http://localhost/",
      "http://a.localhost/",
    ]) {
      expect(refusal(url, allow), url).toBeUndefined();
    }
    for (const url of ["http://10.0.0.1/", "http://169.254.169.254/", "http://printer.local/", "http://[fd00::1]/"]) {
      expect(refusal(url, allow), url).toBeDefined();
    }
  });

  it("private allows the private ranges, not loopback or link-local", () => {
    const allow = parseWebhookAllow("private");
    for (const url of ["http://10.0.0.1/", "http://192.168.0.5/", "http://100.64.1.1/", "http://[fd12::1]/"]) {
      expect(refusal(url, allow), url).toBeUndefined();
    }
    for (const url of ["http://127.0.0.1/", "http://169.254.169.254/", "http://svc.internal/"]) {
      expect(refusal(url, allow), url).toBeDefined();
    }
  });

  it("addresses and CIDRs allow exactly their range (an IPv4-mapped address is its IPv4 address)", () => {
    const allow = parseWebhookAllow(" 10.1.0.0/16, 127.0.0.1 fd00:1::/32 ");
    expect(allow.invalid).toEqual([]);
    for (const url of ["http://10.1.2.3/", "http://127.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://[fd00:1:2::3]/"]) {
      expect(refusal(url, allow), url).toBeUndefined();
    }
    for (const url of ["http://10.2.0.1/", "http://127.0.0.2/", "http://localhost/", "http://[fd00:2::1]/"]) {
      expect(refusal(url, allow), url).toBeDefined();
    }
  });

  it("host names and *.suffix entries allow those names only", () => {
    const allow = parseWebhookAllow("hooks.internal,*.svc.cluster.local");
    expect(refusal("http://hooks.internal/x", allow)).toBeUndefined();
    expect(refusal("http://HOOKS.INTERNAL./x", allow)).toBeUndefined();
    expect(refusal("http://a.svc.cluster.local/", allow)).toBeUndefined();
    expect(refusal("http://other.internal/", allow)).toBeDefined();
    expect(refusal("http://svc.cluster.local/", allow)).toBeDefined();
  });

  it("entries it cannot read allow nothing and are reported; empty and none allow nothing", () => {
    const allow = parseWebhookAllow("loop*back, 10.0.0.0/33, 1.2.3, 10.0.0.0/8/1, http://x/");
    expect(allow.invalid).toEqual(["loop*back", "10.0.0.0/33", "1.2.3", "10.0.0.0/8/1", "http://x/"]);
    expect(allow).toMatchObject({ loopback: false, private: false, cidrs: [], hosts: [], suffixes: [] });
    for (const value of ["", "none", undefined]) {
      expect(parseWebhookAllow(value)).toEqual({ loopback: false, private: false, cidrs: [], hosts: [], suffixes: [], invalid: [] });
    }
  });
});

describe("URL redaction", () => {
  it("keeps the origin only: no userinfo, path, query or fragment", () => {
    expect(redactUrl("https://user:pw@Hooks.Example:8443/p/s3cret?token=abc#frag")).toBe("https://hooks.example:8443/…");
    expect(redactUrl("http://127.0.0.1:9/hook?token=t")).toBe("http://127.0.0.1:9/…");
    expect(redactUrl("not a url")).toBe("[webhook URL]");
  });

  it("replaces the URL in a text in every spelling: as given, as parsed, its path and query, its userinfo", () => {
    const url = "HTTPS://user:pw@Hooks.Example/p/s3cret?token=abc";
    const text = [
      `fetch ${url} failed`,
      "to https://user:pw@hooks.example/p/s3cret?token=abc",
      "POST /p/s3cret?token=abc",
      "auth user:pw@",
    ].join("; ");
    const out = redactUrlIn(text, url);
    expect(out).toBe("fetch https://hooks.example/… failed; to https://hooks.example/…; POST …; auth …");
    for (const secret of ["s3cret", "token=abc", "user:pw"]) expect(out).not.toContain(secret);
  });
});
