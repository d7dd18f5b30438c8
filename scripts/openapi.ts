// Writes the OpenAPI document the Worker serves at /openapi.json to docs/openapi.json, so the
// API description can be read and diffed without running the stack. A test keeps the two equal.
import { writeFileSync } from "node:fs";
import { createApp } from "../workers/platform/app";
import { openApiDocument } from "../workers/platform/routes/docs";

const doc = openApiDocument(createApp());
writeFileSync("docs/openapi.json", `${JSON.stringify(doc, null, 2)}\n`);
console.log(`docs/openapi.json: ${Object.keys(doc.paths ?? {}).length} paths`);
