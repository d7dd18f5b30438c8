// @ts-check
/** `schemas list|show|register|check`: the schema registry (docs/schemas.md). */
import { readFileSync } from "node:fs";
import { EXIT, seg, UsageError } from "./api.mjs";
import { command, str } from "./cli.mjs";
import { printJson, table } from "./ui.mjs";

/**
 * @typedef {{ topic: string, type: string, compatibility: string, latestVersion: number, dataschema: string, versions: number }} CatalogEntry
 * @typedef {{ version: number, schema: unknown, dataschema: string, source: "config" | "registry", createdAt?: string, createdBy?: string | null }} SchemaVersion
 * @typedef {{ topic: string, type: string, compatibility: string, schemas: SchemaVersion[] }} TypeSchemas
 * @typedef {{ version: number, path: string, message: string, direction: string }} Incompatibility
 * @typedef {{ compatible: boolean, version: number, registered: boolean, compatibility: string,
 *   checkedAgainst: number[], incompatibilities: Incompatibility[] }} Verdict
 */

/** @param {string} topic @param {string} type */
const typePath = (topic, type) => `/v1/topics/${seg(topic)}/types/${seg(type)}`;

/** @param {number[]} versions */
const against = (versions) => (versions.length === 0 ? "nothing to check against" : `checked against ${versions.join(", ")}`);

/**
 * Reads a schema file: a JSON Schema, or `{"topic"?, "type"?, "schema"}` naming where it goes.
 * @param {string} file a path, or `-` for stdin
 * @returns {{ schema: unknown, topic?: string, type?: string }}
 */
export function readSchemaFile(file) {
  let text;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${err instanceof Error ? err.message : err}`);
  }
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: not valid JSON: ${err instanceof Error ? err.message : err}`);
  }
  if (typeof value === "boolean") return { schema: value };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError(`${file}: expected a JSON Schema (an object or a boolean), or {"topic", "type", "schema"}`);
  }
  const record = /** @type {Record<string, unknown>} */ (value);
  const wrapper = "schema" in record && Object.keys(record).every((k) => k === "schema" || k === "topic" || k === "type");
  if (!wrapper) return { schema: value };
  for (const key of /** @type {const} */ (["topic", "type"])) {
    if (key in record && (typeof record[key] !== "string" || record[key] === "")) {
      throw new UsageError(`${file}: "${key}" must be a non-empty string`);
    }
  }
  return {
    schema: record.schema,
    ...(typeof record.topic === "string" ? { topic: record.topic } : {}),
    ...(typeof record.type === "string" ? { type: record.type } : {}),
  };
}

export const schemasList = command({
  name: "schemas list",
  args: ["[topic]", "[type]"],
  summary: "List event types with schema versions, or one type's versions",
  details: [
    "Without arguments: every (topic, type) with versions, its latest version and compatibility mode;",
    "with a topic: that topic's; with a topic and a type: each version, where it comes from",
    "(config = eventline.config.ts, registry = registered at runtime) and its dataschema URI.",
  ].join("\n"),
  async run({ api, json, args: [topic, type] }) {
    if (topic !== undefined && type !== undefined) {
      /** @type {TypeSchemas} */
      const body = await api("GET", `${typePath(topic, type)}/schemas`);
      if (json) return printJson(body);
      console.log(`${body.topic}/${body.type}: ${body.schemas.length} version(s), ${body.compatibility}`);
      console.log(
        table(
          ["VERSION", "SOURCE", "CREATED", "BY", "DATASCHEMA"],
          body.schemas.map((s) => [s.version, s.source, s.createdAt ?? "-", s.createdBy ?? "-", s.dataschema]),
        ),
      );
      return EXIT.ok;
    }
    // With a topic, the API narrows (and answers 404 topic_not_found for an unknown one).
    /** @type {{ types: CatalogEntry[] }} */
    const body = await api("GET", topic === undefined ? "/v1/schemas" : `/v1/schemas?topic=${seg(topic)}`);
    const types = topic === undefined ? body.types : body.types.filter((t) => t.topic === topic);
    if (json) return printJson({ types });
    if (types.length === 0) {
      console.log(topic === undefined ? "no event type has a schema version" : `no event type of ${topic} has a schema version`);
      return EXIT.ok;
    }
    console.log(
      table(
        ["TOPIC", "TYPE", "LATEST", "VERSIONS", "MODE"],
        types.map((t) => [t.topic, t.type, t.latestVersion, t.versions, t.compatibility]),
      ),
    );
    return EXIT.ok;
  },
});

export const schemasShow = command({
  name: "schemas show",
  args: ["<topic>", "<type>", "[version]"],
  summary: "Print one schema version (default: the latest) as JSON",
  details: "The first line names the version, its source and its dataschema URI; then the JSON Schema.",
  async run({ api, json, args: [topic = "", type = "", version] }) {
    if (version !== undefined && !/^[1-9]\d{0,8}$/.test(version)) {
      throw new UsageError(`version must be a positive integer, not ${JSON.stringify(version)}`);
    }
    /** @type {SchemaVersion | undefined} */
    let item;
    if (version === undefined) {
      /** @type {TypeSchemas} */
      const body = await api("GET", `${typePath(topic, type)}/schemas`);
      item = body.schemas.at(-1);
    } else {
      item = await api("GET", `${typePath(topic, type)}/schemas/${version}`);
    }
    if (item === undefined) throw new UsageError(`${topic}/${type} has no schema versions`);
    if (json) return printJson(item);
    console.log(`# ${topic}/${type} version ${item.version} (${item.source}): ${item.dataschema}`);
    console.log(JSON.stringify(item.schema, null, 2));
    return EXIT.ok;
  },
});

export const schemasRegister = command({
  name: "schemas register",
  args: ["<topic>", "<type>", "<file>"],
  summary: "Register FILE's JSON Schema as the type's next version (admin grant)",
  details: [
    'FILE (`-` for stdin) holds a JSON Schema draft 2020-12, or {"topic"?, "type"?, "schema"} (a topic',
    "or type it names must be the arguments', else exit 2). It is checked against the",
    "earlier versions under the type's compatibility mode; a schema that breaks it is refused (exit 1,",
    "each incompatibility printed). Registering a schema identical to an existing version is a no-op",
    "that names that version.",
  ].join("\n"),
  async run({ api, json, args: [topic = "", type = "", file = ""] }) {
    const read = readSchemaFile(file);
    // A {"topic", "type", "schema"} file names where it goes: it must be where the arguments say.
    for (const [key, given] of /** @type {const} */ ([
      ["topic", topic],
      ["type", type],
    ])) {
      const named = read[key];
      if (named !== undefined && named !== given) {
        throw new UsageError(`${file} is for ${key} ${JSON.stringify(named)}, but the arguments name ${key} ${JSON.stringify(given)}`);
      }
    }
    const { schema } = read;
    const res = await api("POST", `${typePath(topic, type)}/schemas`, { body: { schema }, withHeaders: true });
    if (json) return printJson(res.body);
    const { version, dataschema, compatibility, checkedAgainst } = res.body;
    console.log(
      res.status === 201
        ? `registered ${topic}/${type} version ${version} (${compatibility}, ${against(checkedAgainst)})`
        : `already registered: ${topic}/${type} version ${version} is this schema`,
    );
    console.log(`dataschema: ${dataschema}`);
    return EXIT.ok;
  },
});

export const schemasCheck = command({
  name: "schemas check",
  args: ["<file>"],
  summary: "Check FILE's schema against a type's versions without registering it; exit 1 if incompatible",
  details: [
    'FILE (`-` for stdin) holds a JSON Schema, or {"topic", "type", "schema"}; --topic and --type',
    "override the file's. Asks POST /v1/topics/<topic>/types/<type>/compatibility (a produce grant",
    "suffices), so a producer's CI can fail before deploying: exit 0 when compatible, 1 when not,",
    "with each incompatibility (version, /data path, reason) printed.",
  ].join("\n"),
  options: {
    topic: { type: "string", arg: "TOPIC", desc: 'the topic (else the file\'s "topic")' },
    type: { type: "string", arg: "TYPE", desc: 'the event type (else the file\'s "type")' },
  },
  async run({ api, json, values, args: [file = ""] }) {
    const read = readSchemaFile(file);
    const topic = str(values.topic) ?? read.topic;
    const type = str(values.type) ?? read.type;
    if (topic === undefined || type === undefined) {
      throw new UsageError(`give --topic and --type, or a file with {"topic", "type", "schema"}`);
    }
    /** @type {Verdict} */
    const verdict = await api("POST", `${typePath(topic, type)}/compatibility`, { body: { schema: read.schema } });
    const code = verdict.compatible ? EXIT.ok : EXIT.api;
    if (json) {
      printJson(verdict);
      return code;
    }
    if (verdict.registered) {
      console.log(`compatible: ${topic}/${type} version ${verdict.version} already is this schema`);
    } else if (verdict.compatible) {
      console.log(
        `compatible: would be ${topic}/${type} version ${verdict.version} (${verdict.compatibility}, ${against(verdict.checkedAgainst)})`,
      );
    } else {
      console.log(`incompatible: ${topic}/${type} under ${verdict.compatibility} (${against(verdict.checkedAgainst)}):`);
      for (const i of verdict.incompatibilities) console.log(`  version ${i.version} ${i.path}: ${i.message} (${i.direction})`);
    }
    return code;
  },
});
