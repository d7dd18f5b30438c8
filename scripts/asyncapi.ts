// Writes the AsyncAPI document a fresh local stack serves at /asyncapi.json (default config, no
// runtime webhooks, as seen by an admin) to docs/asyncapi.json. A test keeps the two equal.
import { writeFileSync } from "node:fs";
import config from "../eventline.config";
import { configCatalog, LOCAL_ORIGIN } from "../workers/platform/asyncapi/catalog";
import { asyncApiDocument } from "../workers/platform/asyncapi/document";
import { EVENTLINE_VERSION } from "../workers/platform/reference/page";

const doc = asyncApiDocument(config, configCatalog(config, LOCAL_ORIGIN), [], LOCAL_ORIGIN, EVENTLINE_VERSION);
writeFileSync("docs/asyncapi.json", `${JSON.stringify(doc, null, 2)}\n`);
console.log(
  `docs/asyncapi.json: ${Object.keys(doc.channels as object).length} channels, ${Object.keys(doc.operations as object).length} operations`,
);
