// Fails when shared/db/schema.ts has changes that no migration in migrations/ captures, i.e. when
// `npm run db:generate` would write something. It runs the generator and undoes what it wrote.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

const dir = path.join(import.meta.dirname, "..", "migrations");

function snapshot() {
  const files = new Map();
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.set(full, readFileSync(full));
    }
  };
  walk(dir);
  return files;
}

const digest = (buf) => createHash("sha256").update(buf).digest("hex");
const before = snapshot();
execFileSync("npx", ["drizzle-kit", "generate"], { stdio: ["ignore", "ignore", "inherit"] });
const after = snapshot();

const changed = [];
for (const [file, content] of after) {
  const old = before.get(file);
  if (old === undefined) {
    changed.push(`new ${path.relative(process.cwd(), file)}`);
    rmSync(file);
  } else if (digest(old) !== digest(content)) {
    changed.push(`changed ${path.relative(process.cwd(), file)}`);
    writeFileSync(file, old);
  }
}
if (changed.length > 0) {
  console.error(
    `shared/db/schema.ts has changes without a migration (${changed.join(", ")}).\nRun \`npm run db:generate\` and commit the new migration.`,
  );
  process.exit(1);
}
console.log("migrations match shared/db/schema.ts");
