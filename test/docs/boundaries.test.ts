import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/**
 * Layout boundaries (issue 16). The consumer SDK (sdk/) stands on its own: a user's Worker can take the folder without the
 * platform. So no file in it imports anything outside it but npm packages, and the platform's
 * code reaches the SDK only through its files (the platform may depend on the SDK, never the
 * reverse). Type imports count too: a user's build would need them.
 */

const root = path.resolve(import.meta.dirname, "../..");
const sdk = path.join(root, "sdk");
const SPECIFIER = /(?:from|import)\s*\(?\s*["']([^"']+)["']/g;

function specifiers(file: string): string[] {
  return [...readFileSync(file, "utf8").matchAll(SPECIFIER)].map((m) => m[1] as string);
}

describe("sdk/ imports nothing outside itself", () => {
  const files = readdirSync(sdk).filter((f) => f.endsWith(".ts"));

  it("has the SDK's files, with an entry point and a README", () => {
    expect(files).toEqual(expect.arrayContaining(["index.ts", "consumer.ts", "consumer-batch.ts", "messages.ts"]));
    expect(readdirSync(sdk)).toContain("README.md");
  });

  it.each(files)("sdk/%s", (file) => {
    const outside = specifiers(path.join(sdk, file)).filter((spec) => {
      if (!spec.startsWith(".")) return false; // packages: checked below
      const resolved = path.resolve(sdk, spec);
      return !resolved.startsWith(`${sdk}${path.sep}`) && resolved !== sdk;
    });
    expect(outside).toEqual([]);
  });

  it("imports only zod from npm", () => {
    const packages = new Set(files.flatMap((f) => specifiers(path.join(sdk, f)).filter((s) => !s.startsWith("."))));
    expect([...packages]).toEqual(["zod"]);
  });
});

/** Every .ts file under `dir`, recursively. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return name.endsWith(".ts") ? [full] : [];
  });
}

describe("config has one door: shared/ and sdk/ never import the application's config file", () => {
  const config = path.join(root, "eventline.config");
  it.each([...sources(path.join(root, "shared")), ...sources(sdk)].map((f) => path.relative(root, f)))("%s", (file) => {
    const importsConfig = specifiers(path.join(root, file)).some(
      (spec) => spec.startsWith(".") && path.resolve(path.dirname(path.join(root, file)), spec).replace(/\.ts$/, "") === config,
    );
    expect(importsConfig).toBe(false);
  });
});

describe("the platform hosts the examples, it does not import them", () => {
  const examples = path.join(root, "workers", "examples");
  const platformFiles = [
    ...sources(path.join(root, "workers", "platform")),
    ...sources(path.join(root, "durable-objects")),
    ...sources(path.join(root, "shared")),
  ];
  const hosting = path.join("workers", "platform", "hosting.ts");
  const intoExamples = (file: string) =>
    specifiers(path.join(root, file)).filter(
      (spec) => spec.startsWith(".") && path.resolve(path.dirname(path.join(root, file)), spec).startsWith(`${examples}${path.sep}`),
    );
  it.each(platformFiles.map((f) => path.relative(root, f)).filter((f) => f !== hosting))("%s", (file) => {
    expect(intoExamples(file)).toEqual([]);
  });
  it("workers/platform/hosting.ts, the one list of hosted applications, names the orders example", () => {
    expect(intoExamples(hosting)).toEqual(["../examples/orders"]);
  });
});
