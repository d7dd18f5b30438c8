import { STRUCTURED_CONTENT_TYPE } from "../../../shared/cloudevents";
import type { EventlineConfig, RouteGroup, TopicConfig } from "../../../shared/config";
import type { FilterPattern } from "../../../shared/filter";
import { redactUrl } from "../../../shared/redact-url";
import type { CatalogEntry } from "./catalog";
import { envelopeSchema, SCHEMA_FORMAT } from "./envelope";
import { bearerSecurity, securitySchemes, topicSecurity } from "./security";

/**
 * The AsyncAPI 3.0 document of Eventline's events (ADR 0050), built from plain inputs so the
 * route, the docs script and the tests make the same document: per topic a channel per address
 * (ingest, partition read, live stream), a message per event type typed by its latest data schema
 * (plus a generic CloudEvent where other types are accepted), a `send` operation per writable
 * topic, `receive` operations for the reads and for every subscription.
 */

/** A webhook subscription created at runtime (D1), as the document names it: never its URL's path or query. */
export interface WebhookSubscription {
  name: string;
  topic: string;
  filter: FilterPattern | undefined;
  ordering: "none" | "partition";
  maxRetries: number;
  /** The target URL; the document shows only its origin (shared/redact-url.ts). */
  url: string;
}

type Ref = { $ref: string };
type Messages = Record<string, Ref>;

const ASYNCAPI_VERSION = "3.0.0";
const ref = (pointer: string): Ref => ({ $ref: pointer });
/** JSON Pointer escaping of a member name (RFC 6901). */
const pointerToken = (name: string) => name.replaceAll("~", "~0").replaceAll("/", "~1");
/** Component keys must match ^[\w\d.\-_]+$ (AsyncAPI 3.0). */
const componentKey = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, "_");

const DESCRIPTION = `The events of Eventline's topics: each message is a whole CloudEvent 1.0 in structured mode (\`${STRUCTURED_CONTENT_TYPE}\`), its \`data\` typed by the latest data schema of its type (JSON Schema draft 2020-12, schemaFormat \`${SCHEMA_FORMAT}\`).

Each topic has three channels, one per address: \`/v1/topics/{topic}/events\` (publish: POST, also in binary and batch modes; see /openapi.json), \`…/partitions/{partition}/events\` (ordered pages of a partition) and \`…/partitions/{partition}/stream\` (the partition followed live). Subscriptions (declared in eventline.config.ts and delivered through their own queue, or webhooks created at runtime) are push channels: their operations say how events reach the consumer.

Every HTTP operation needs \`Authorization: Bearer <credential>\` with a grant on the topic (\`produce\` to publish, \`consume\` to read); this document shows the topics the caller holds a grant on and the subscriptions of topics it may consume, webhook targets by their origin only.`;

interface TopicMessages {
  /** Channel message key → component message ref. */
  messages: Messages;
  components: Record<string, unknown>;
}

/** The component messages of one topic: one per cataloged type, and a generic one unless strictTypes refuses other types. */
function topicMessages(topic: TopicConfig, catalog: CatalogEntry[]): TopicMessages {
  const messages: Messages = {};
  const components: Record<string, unknown> = {};
  const used = new Set<string>();
  const add = (wanted: string, message: (pointer: string) => Record<string, unknown>) => {
    let key = componentKey(wanted);
    for (let n = 2; used.has(key); n++) key = `${componentKey(wanted)}_${n}`;
    used.add(key);
    components[key] = message(`#/components/messages/${pointerToken(key)}/payload/schema`);
    messages[key] = ref(`#/components/messages/${pointerToken(key)}`);
  };
  const sensitive =
    Object.keys(topic.sensitive).length === 0
      ? ""
      : " Sensitive fields of data are stored encrypted: a reader without a `decrypt` grant gets them as ciphertext envelopes (docs/security.md).";
  for (const entry of catalog.filter((e) => e.topic === topic.name).sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0))) {
    add(`${topic.name}.${entry.type}`, (pointer) => ({
      name: entry.type,
      title: entry.type,
      summary: `An event of type ${entry.type} on topic ${topic.name}; data: schema version ${entry.version}.`,
      ...(sensitive === "" ? {} : { description: sensitive.trim() }),
      contentType: STRUCTURED_CONTENT_TYPE,
      payload: { schemaFormat: SCHEMA_FORMAT, schema: envelopeSchema({ type: entry.type, data: entry, pointer }) },
      "x-eventline-dataschema": entry.dataschema,
      "x-eventline-schema-version": entry.version,
    }));
  }
  if (!topic.strictTypes) {
    const typed = used.size > 0;
    add(`${topic.name}.CloudEvent`, (pointer) => ({
      name: "CloudEvent",
      title: typed ? "Any other CloudEvent" : "Any CloudEvent",
      summary: typed
        ? `An event of a type without a data schema on topic ${topic.name}: data is not checked.`
        : `Any event on topic ${topic.name}: no data schema, data is not checked.`,
      ...(sensitive === "" ? {} : { description: sensitive.trim() }),
      contentType: STRUCTURED_CONTENT_TYPE,
      payload: { schemaFormat: SCHEMA_FORMAT, schema: envelopeSchema({ pointer }) },
    }));
  }
  return { messages, components };
}

const partitionParameter = (topic: TopicConfig) => ({
  partition: {
    description: `Partition number, 0-based (the topic has ${topic.partitions})`,
    enum: Array.from({ length: topic.partitions }, (_, p) => String(p)),
    examples: ["0"],
  },
});

function describeFilter(filter: FilterPattern | undefined): string {
  return filter === undefined ? "every event of the topic" : `the events matching the filter ${JSON.stringify(filter)}`;
}

/**
 * The AsyncAPI 3.0 document. `config` gives the topics and the config subscriptions, `catalog` the
 * latest data schema of each (topic, type), `webhooks` the runtime webhook subscriptions, `origin`
 * the server (e.g. http://localhost:8787), `version` info.version (the package's). Callers pass only
 * what the reader may see; webhook URLs are reduced to their origin here whatever they are given.
 */
export function asyncApiDocument(
  config: EventlineConfig,
  catalog: CatalogEntry[],
  webhooks: WebhookSubscription[],
  origin: string,
  version: string,
): Record<string, unknown> {
  const server = new URL(origin);
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  const topicChannel = new Map<string, { messages: Messages }>();
  const security = (group: RouteGroup) => topicSecurity(config, group);

  for (const topic of config.topics) {
    const own = topicMessages(topic, catalog);
    Object.assign(messages, own.components);
    topicChannel.set(topic.name, own);
    const readOnly = topic.internal;
    const base = `/v1/topics/${encodeURIComponent(topic.name)}`;
    const about = topic.description === undefined ? "" : ` ${topic.description}`;
    const extensions = { "x-eventline-topic": topic.name, ...(readOnly ? { "x-eventline-internal": true } : {}) };
    if (!readOnly) {
      channels[topic.name] = {
        address: `${base}/events`,
        title: `${topic.name}: publish`,
        description: `Publish events to topic ${topic.name} (POST, structured, binary or batch mode; 202 once durably committed).${about}`,
        messages: own.messages,
        ...extensions,
      };
      operations[`${topic.name}.publish`] = {
        action: "send",
        channel: ref(`#/channels/${pointerToken(topic.name)}`),
        title: `Publish to ${topic.name}`,
        summary: `POST events to topic ${topic.name}; needs a produce grant on it.`,
        ...security("ingest"),
      };
    }
    const readOnlyNote = readOnly
      ? " Read-only: written only by the platform, readable by global admins (admin:*); it has no publish channel."
      : "";
    channels[`${topic.name}.partition`] = {
      address: `${base}/partitions/{partition}/events`,
      title: `${topic.name}: partition read`,
      description: `Ordered pages of one partition of topic ${topic.name} (GET ?from=&limit=), each event with its partition and sequence.${readOnlyNote}${about}`,
      parameters: partitionParameter(topic),
      messages: own.messages,
      ...extensions,
    };
    channels[`${topic.name}.stream`] = {
      address: `${base}/partitions/{partition}/stream`,
      title: `${topic.name}: live partition`,
      description: `One partition of topic ${topic.name} followed live (Server-Sent Events or long-poll, docs/live-streams.md).${readOnlyNote}`,
      parameters: partitionParameter(topic),
      messages: own.messages,
      ...extensions,
    };
    operations[`${topic.name}.read`] = {
      action: "receive",
      channel: ref(`#/channels/${pointerToken(`${topic.name}.partition`)}`),
      title: `Read ${topic.name}`,
      summary: `Read a partition of ${topic.name} in sequence order; needs a consume grant on it.`,
      ...security("read"),
    };
    operations[`${topic.name}.tail`] = {
      action: "receive",
      channel: ref(`#/channels/${pointerToken(`${topic.name}.stream`)}`),
      title: `Follow ${topic.name} live`,
      summary: `Follow a partition of ${topic.name} live; needs a consume grant on it.`,
      ...security("read"),
    };
  }

  const subscribe = (name: string, topic: string, delivery: string, details: Record<string, unknown>) => {
    const own = topicChannel.get(topic);
    if (own === undefined) return;
    const id = `subscription.${name}`;
    channels[id] = {
      // No address: events are pushed to the consumer, not fetched from an address of this server.
      address: null,
      title: `Subscription ${name}`,
      description: delivery,
      messages: own.messages,
      "x-eventline-topic": topic,
    };
    operations[id] = {
      action: "receive",
      channel: ref(`#/channels/${pointerToken(id)}`),
      title: `Subscription ${name}`,
      summary: `Receives ${describeFilter(details.filter as FilterPattern | undefined)} from topic ${topic}.`,
      "x-eventline-subscription": { name, topic, ...details, filter: details.filter ?? null },
    };
  };
  for (const sub of config.subscriptions) {
    const ordering =
      sub.ordering === "partition"
        ? "in sequence order per partition (the consumer SDK holds back an event until its predecessor settled)"
        : "in any order";
    subscribe(
      sub.name,
      sub.topic,
      `${sub.description === undefined ? "" : `${sub.description} `}Delivered through its own queue (eventline-${sub.name}, binding ${sub.queue}) to ${sub.consumer === "platform" ? "the platform Worker" : `the Worker of ${sub.consumer}`}, ${ordering}; at least once, up to ${sub.maxRetries} retries with backoff, then the subscription's DLQ.`,
      {
        kind: "worker",
        queue: `eventline-${sub.name}`,
        binding: sub.queue,
        consumer: sub.consumer,
        filter: sub.filter,
        ordering: sub.ordering,
        maxRetries: sub.maxRetries,
        backoff: sub.backoff,
        circuitBreaker: sub.circuitBreaker,
      },
    );
  }
  for (const hook of webhooks) {
    const target = redactUrl(hook.url);
    subscribe(
      hook.name,
      hook.topic,
      `A webhook created at runtime: each event is POSTed to ${target} as a structured CloudEvent, signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature), ${hook.ordering === "partition" ? "in sequence order per partition" : "in any order"}; 2xx delivers, anything else is retried up to ${hook.maxRetries} times, then dead-lettered.`,
      { kind: "webhook", target, filter: hook.filter, ordering: hook.ordering, maxRetries: hook.maxRetries },
    );
  }

  return {
    asyncapi: ASYNCAPI_VERSION,
    info: { title: "Eventline events", version, description: DESCRIPTION },
    defaultContentType: STRUCTURED_CONTENT_TYPE,
    servers: {
      eventline: {
        host: server.host,
        protocol: server.protocol.replace(/:$/, ""),
        description: "The Eventline platform Worker",
        security: bearerSecurity(config),
      },
    },
    channels,
    operations,
    components: { messages, securitySchemes: securitySchemes(config) },
  };
}
