import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decryptData,
  type EncryptedValue,
  encryptData,
  expandPaths,
  type FieldContext,
  isEncryptedValue,
  sensitivePointersFor,
} from "../../shared/security/fields";
import { KEY_VAULT_SHARDS, KeyringError, parseKeyring, shardOfKeyId, vaultShardOf } from "../../shared/security/keyring";

const CTX: FieldContext = { topic: "customers", source: "/crm", id: "evt-1" };
const KID = "3.0123456789abcdef0123456789abcdef";
const KEY = crypto.getRandomValues(new Uint8Array(32)).buffer;
const lookup = async (kid: string) => (kid === KID ? KEY : null);

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

const DATA = {
  email: "ada@example.com",
  age: 36,
  address: { street: "1 Analytical Way", zip: "N1" },
  tags: ["vip", "beta"],
  cards: [
    { number: "4111111111111111", brand: "visa" },
    { number: "5500000000000004", brand: "mc" },
  ],
  nothing: null,
  public: "hello",
};

function at(data: unknown, pointer: string): unknown {
  let value = data;
  for (const segment of pointer.slice(1).split("/"))
    value = (value as Record<string, unknown>)[segment.replaceAll("~1", "/").replaceAll("~0", "~")];
  return value;
}

describe("expandPaths", () => {
  it("expands wildcards over arrays and objects, skips absent paths, keeps each pointer once", () => {
    expect(expandPaths(DATA, ["/email", "/cards/*/number", "/missing", "/address/*", "/tags/5", "/email"])).toEqual([
      "/email",
      "/cards/0/number",
      "/cards/1/number",
      "/address/street",
      "/address/zip",
    ]);
  });

  it("drops pointers enclosed by another selected one, escapes member names, ignores non-containers", () => {
    expect(expandPaths(DATA, ["/cards/0/number", "/cards"])).toEqual(["/cards"]);
    expect(expandPaths({ "a/b": { "c~d": 1 } }, ["/a~1b/*"])).toEqual(["/a~1b/c~0d"]);
    expect(expandPaths("text", ["/*"])).toEqual([]);
    expect(expandPaths([{ x: 1 }, { y: 2 }], ["/*/x", "/01/y"])).toEqual(["/0/x"]);
    expect(expandPaths(DATA, ["/nothing"])).toEqual(["/nothing"]);
  });

  it("takes the sensitive pointers of every type and of the event's type", () => {
    const topic = { sensitive: { "*": ["/email"], "customer.created": ["/address", "/email"] } };
    expect(sensitivePointersFor(topic, "customer.created")).toEqual(["/email", "/address"]);
    expect(sensitivePointersFor(topic, "other")).toEqual(["/email"]);
    expect(sensitivePointersFor({ sensitive: {} }, "other")).toEqual([]);
  });
});

describe("encryptData / decryptData", () => {
  const POINTERS = ["/email", "/age", "/address", "/tags", "/cards/*/number", "/nothing"];

  it("round-trips strings, numbers, objects, arrays and null at nested and wildcard paths", async () => {
    const encrypted = (await encryptData(DATA, POINTERS, CTX, { kid: KID, key: KEY })) as typeof DATA;
    for (const pointer of expandPaths(DATA, POINTERS)) {
      const envelope = at(encrypted, pointer);
      expect(isEncryptedValue(envelope), pointer).toBe(true);
      expect((envelope as EncryptedValue).kid).toBe(KID);
    }
    expect(encrypted.public).toBe("hello");
    expect(encrypted.cards[0]?.brand).toBe("visa");
    const text = JSON.stringify(encrypted);
    for (const secret of ["ada@example.com", "Analytical", "4111111111111111", "5500000000000004", "vip"])
      expect(text).not.toContain(secret);

    const { data, undecryptable } = await decryptData(encrypted, CTX, lookup);
    expect(undecryptable).toEqual([]);
    expect(data).toEqual(DATA);
  });

  it("round-trips arbitrary JSON values", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        const input = { secret: value };
        const encrypted = await encryptData(input, ["/secret"], CTX, { kid: KID, key: KEY });
        const { data, undecryptable } = await decryptData(encrypted, CTX, lookup);
        expect(undecryptable).toEqual([]);
        // Member order is canonical after a round trip; the values are the same.
        expect(data).toEqual(JSON.parse(JSON.stringify(input)));
      }),
      { numRuns: 50 },
    );
  });

  it("is deterministic: the same event gives byte-identical envelopes, whatever the member order", async () => {
    const a = await encryptData(DATA, POINTERS, CTX, { kid: KID, key: KEY });
    const b = await encryptData(structuredClone(DATA), POINTERS, CTX, { kid: KID, key: KEY });
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    const reordered = await encryptData({ address: { zip: "N1", street: "1 Analytical Way" } }, ["/address"], CTX, { kid: KID, key: KEY });
    expect(at(reordered, "/address")).toEqual(at(a, "/address"));
    // ...while the same value elsewhere (another field, another event) gets another IV.
    const twice = (await encryptData({ x: "same", y: "same" }, ["/x", "/y"], CTX, { kid: KID, key: KEY })) as Record<
      string,
      EncryptedValue
    >;
    expect(twice.x?.iv).not.toBe(twice.y?.iv);
    const other = (await encryptData({ x: "same" }, ["/x"], { ...CTX, id: "evt-2" }, { kid: KID, key: KEY })) as Record<
      string,
      EncryptedValue
    >;
    expect(other.x?.iv).not.toBe(twice.x?.iv);
  });

  it("never mutates its input", async () => {
    const input = structuredClone(DATA);
    const encrypted = await encryptData(input, POINTERS, CTX, { kid: KID, key: KEY });
    expect(input).toEqual(DATA);
    const frozen = JSON.parse(JSON.stringify(encrypted)) as unknown;
    await decryptData(encrypted, CTX, lookup);
    expect(encrypted).toEqual(frozen);
  });

  it("returns data without sensitive paths untouched (the same object)", async () => {
    const input = { public: "hello", list: [1, 2] };
    expect(await encryptData(input, ["/email", "/list/*/x"], CTX, { kid: KID, key: KEY })).toBe(input);
    const result = await decryptData(input, CTX, lookup);
    expect(result.data).toBe(input);
    expect(result.undecryptable).toEqual([]);
  });

  it("keeps a member named __proto__ a plain member", async () => {
    const input = JSON.parse('{"__proto__": {"secret": "s3"}, "other": 1}') as Record<string, unknown>;
    const encrypted = (await encryptData(input, ["/__proto__/secret"], CTX, { kid: KID, key: KEY })) as Record<string, unknown>;
    expect(Object.getPrototypeOf(encrypted)).toBe(Object.prototype);
    const member = Object.getOwnPropertyDescriptor(encrypted, "__proto__")?.value as Record<string, unknown> | undefined;
    expect(isEncryptedValue(member?.secret)).toBe(true);
    const { data } = await decryptData(encrypted, CTX, lookup);
    expect(JSON.stringify(data)).toBe(JSON.stringify(input));
  });

  describe("ciphertext decrypts only where it was written", () => {
    async function moved(target: FieldContext, move: (envelope: EncryptedValue) => unknown) {
      const encrypted = (await encryptData({ email: "ada@example.com" }, ["/email"], CTX, { kid: KID, key: KEY })) as {
        email: EncryptedValue;
      };
      const data = move(encrypted.email);
      const result = await decryptData(data, target, lookup);
      expect(JSON.stringify(result.data)).not.toContain("ada@example.com");
      return result;
    }

    it("into another event", async () => {
      const result = await moved({ ...CTX, id: "evt-2" }, (email) => ({ email }));
      expect(result.undecryptable).toEqual(["/email"]);
    });

    it("into another topic", async () => {
      const result = await moved({ ...CTX, topic: "orders" }, (email) => ({ email }));
      expect(result.undecryptable).toEqual(["/email"]);
    });

    it("from another source", async () => {
      const result = await moved({ ...CTX, source: "/other" }, (email) => ({ email }));
      expect(result.undecryptable).toEqual(["/email"]);
    });

    it("into another field", async () => {
      const result = await moved(CTX, (email) => ({ backup: email, list: [email] }));
      expect(result.undecryptable).toEqual(["/backup", "/list/0"]);
    });

    it("tampered ciphertext or IV", async () => {
      const flip = (text: string) => (text[5] === "A" ? `${text.slice(0, 5)}B${text.slice(6)}` : `${text.slice(0, 5)}A${text.slice(6)}`);
      const result = await moved(CTX, (email) => ({
        a: { ...email, ct: flip(email.ct) },
        b: { ...email, iv: flip(email.iv) },
        c: { ...email, ct: email.ct.slice(0, -2) },
        d: { ...email, iv: "!!notbase64" },
      }));
      expect(result.undecryptable).toEqual(["/a", "/b", "/c", "/d"]);
    });

    it("with an unknown kid or a shredded (null) key", async () => {
      const result = await moved(CTX, (email) => ({ email: { ...email, kid: "3.ffffffffffffffffffffffffffffffff" } }));
      expect(result.undecryptable).toEqual(["/email"]);
      const encrypted = await encryptData({ email: "ada@example.com" }, ["/email"], CTX, { kid: KID, key: KEY });
      const shredded = await decryptData(encrypted, CTX, async () => null);
      expect(shredded.undecryptable).toEqual(["/email"]);
      expect(shredded.data).toEqual(encrypted);
    });

    it("under another data key", async () => {
      const encrypted = await encryptData({ email: "ada@example.com" }, ["/email"], CTX, { kid: KID, key: KEY });
      const wrongKey = crypto.getRandomValues(new Uint8Array(32));
      const result = await decryptData(encrypted, CTX, async () => wrongKey);
      expect(result.undecryptable).toEqual(["/email"]);
    });
  });

  it("looks each kid up once per call", async () => {
    const kids: string[] = [];
    const encrypted = await encryptData(DATA, POINTERS, CTX, { kid: KID, key: KEY });
    await decryptData(encrypted, CTX, async (kid) => {
      kids.push(kid);
      return lookup(kid);
    });
    expect(kids).toEqual([KID]);
  });

  it("recognises only exact envelopes", () => {
    expect(isEncryptedValue({ $eventline: "enc.v1", kid: "k", iv: "i", ct: "c" })).toBe(true);
    expect(isEncryptedValue({ $eventline: "enc.v2", kid: "k", iv: "i", ct: "c" })).toBe(false);
    expect(isEncryptedValue({ $eventline: "enc.v1", kid: "k", iv: "i", ct: "c", extra: 1 })).toBe(false);
    expect(isEncryptedValue({ $eventline: "enc.v1", kid: "k", iv: 1, ct: "c" })).toBe(false);
    expect(isEncryptedValue([])).toBe(false);
    expect(isEncryptedValue(null)).toBe(false);
  });
});

describe("parseKeyring", () => {
  const keyA = crypto.getRandomValues(new Uint8Array(32));
  const keyB = crypto.getRandomValues(new Uint8Array(32));
  const textA = b64(keyA);
  const textB = b64(keyB);

  function parseError(text: string): string {
    try {
      parseKeyring(text);
    } catch (err) {
      expect(err).toBeInstanceOf(KeyringError);
      return (err as Error).message;
    }
    throw new Error("expected parseKeyring to throw");
  }

  it("parses versions newest first", () => {
    const ring = parseKeyring(` v2:${textB} , v1:${textA.replace(/=+$/, "")}`);
    expect(ring.current).toBe("v2");
    expect(ring.versions).toEqual(["v2", "v1"]);
  });

  it.each([
    ["empty", "", /empty/],
    ["blank", "   ", /empty/],
    ["stray comma", `v1:${textA},`, /entry 2 is empty/],
    ["no version", textA, /entry 1 must look like version:base64/],
    ["bad version", `v 1:${textA}`, /entry 1 has an invalid version/],
    ["bad base64", `v1:${textA.slice(0, 20)}!${textA.slice(21)}`, /entry 1 \(version "v1"\): the key is not valid base64/],
    ["short key", `v1:${b64(keyA.slice(0, 16))}`, /must be 32 bytes, got 16/],
    ["long key", `v1:${b64(new Uint8Array([...keyA, 1]))}`, /must be 32 bytes, got 33/],
    ["duplicate version", `v1:${textA},v1:${textB}`, /entry 2: version "v1" is listed more than once/],
  ])("rejects %s without echoing key material", (_name, text, message) => {
    const error = parseError(text);
    expect(error).toMatch(message);
    for (const secret of [textA, textB, textA.slice(0, 20), textA.slice(21), textB.slice(0, 20)]) expect(error).not.toContain(secret);
  });

  it("binds wrapped keys to their additional data and KEK", async () => {
    const ring = parseKeyring(`v1:${textA}`);
    const raw = crypto.getRandomValues(new Uint8Array(32));
    const { kekVersion, wrapped } = await ring.wrap(raw, "kid-1\u0000alice");
    expect(kekVersion).toBe("v1");
    expect(wrapped.length).toBe(12 + 32 + 16);
    expect(await ring.unwrap("v1", wrapped, "kid-1\u0000alice")).toEqual(raw);

    const failure = async (run: () => Promise<unknown>) => {
      try {
        await run();
      } catch (err) {
        return err as Error;
      }
      throw new Error("expected a failure");
    };
    expect(await failure(() => ring.unwrap("v1", wrapped, "kid-1\u0000bob"))).toBeInstanceOf(KeyringError);
    expect(await failure(() => ring.unwrap("v1", wrapped, "kid-2\u0000alice"))).toBeInstanceOf(KeyringError);
    const other = parseKeyring(`v1:${textB}`);
    expect((await failure(() => other.unwrap("v1", wrapped, "kid-1\u0000alice"))).message).toMatch(
      /failed to unwrap under KEK version "v1"/,
    );
    const gone = await failure(() => parseKeyring(`v2:${textB}`).unwrap("v1", wrapped, "kid-1\u0000alice"));
    expect(gone.message).toMatch(/KEK version "v1" is not in EVENTLINE_KEKS/);
    expect(gone.message).not.toContain(textB);
  });

  it("addresses vault shards by FNV-1a of the subject and key ids by their prefix", () => {
    const shards = new Set(Array.from({ length: 200 }, (_, i) => vaultShardOf(`customer-${i}`)));
    expect(shards.size).toBe(KEY_VAULT_SHARDS);
    expect(vaultShardOf("alice")).toBe(vaultShardOf("alice"));
    expect(shardOfKeyId("15.0123456789abcdef0123456789abcdef")).toBe(15);
    expect(shardOfKeyId("16.0123456789abcdef0123456789abcdef")).toBeNull();
    expect(shardOfKeyId("03.0123456789abcdef0123456789abcdef")).toBeNull();
    expect(shardOfKeyId("3.0123")).toBeNull();
  });
});
