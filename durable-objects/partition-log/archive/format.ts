import { formatSequence } from "../../../shared/cloudevents";
import { sha256Hex } from "../../../shared/json";

/**
 * The R2 archive of a partition: sealed segments of consecutive events, each the stored events
 * byte for byte, one per line (NDJSON), gzip-compressed, at an immutable key; and a manifest
 * listing them with a hash chain, so a missing, reordered or altered segment is detectable.
 */

export const GENESIS_CHAIN = "0".repeat(64);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

export interface Segment {
  first: number;
  last: number;
  count: number;
  /** Commit times (ms since epoch): the first event's, and the newest (the last one's unless the clock stepped back). */
  firstReceivedAt: number;
  lastReceivedAt: number;
  /** Size of the gzip object in R2. */
  bytes: number;
  /** SHA-256 (hex) of the gzip object as stored in R2. */
  sha256: string;
  /** SHA-256 of (previous segment's chain + this sha256); the first links to GENESIS_CHAIN. */
  chain: string;
  key: string;
}

export interface Manifest {
  v: 1;
  topic: string;
  partition: number;
  segments: Segment[];
  updatedAt: string;
}

const prefixOf = (topic: string, partition: number) => `topics/${topic}/${partition}/`;

/** `topics/<topic>/<partition>/<first>-<last>.ndjson.gz`, sequences zero-padded so keys sort in log order. */
export function segmentKey(topic: string, partition: number, first: number, last: number): string {
  return `${prefixOf(topic, partition)}${formatSequence(first)}-${formatSequence(last)}.ndjson.gz`;
}

export function manifestKey(topic: string, partition: number): string {
  return `${prefixOf(topic, partition)}manifest.json`;
}

/** The segment's content: each stored event as stored, one per line. */
export function segmentText(bodies: readonly string[]): string {
  return `${bodies.join("\n")}\n`;
}

export async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([encoder.encode(text)]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export async function gunzip(bytes: Uint8Array | ArrayBuffer): Promise<string> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return decoder.decode(await new Response(stream).arrayBuffer());
}

/** The lines of a segment's text (the trailing newline ends the last one). */
export function segmentLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

export async function sha256Bytes(bytes: Uint8Array | ArrayBuffer): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function chainOf(previous: string, sha256: string): Promise<string> {
  return sha256Hex(`${previous}${sha256}`);
}

export interface VerifyProblem {
  key: string;
  problem: string;
}

/**
 * Checks a partition's archive against its manifest: every segment present with its size and
 * SHA-256, the chain recomputed from genesis, sequences contiguous from the first segment, and
 * every line an event at the sequence it should hold. Reads every segment: an operator check.
 */
export async function verifyArchive(
  bucket: R2Bucket,
  manifest: Manifest,
): Promise<{ ok: boolean; segments: number; problems: VerifyProblem[] }> {
  const problems: VerifyProblem[] = [];
  let chain = GENESIS_CHAIN;
  let expectFirst: number | undefined;
  for (const s of manifest.segments) {
    if (expectFirst !== undefined && s.first !== expectFirst) {
      problems.push({ key: s.key, problem: `starts at ${s.first}; the previous segment ended at ${expectFirst - 1}` });
    }
    expectFirst = s.last + 1;
    chain = await chainOf(chain, s.sha256);
    if (chain !== s.chain) problems.push({ key: s.key, problem: "hash chain does not match the manifest" });
    const object = await bucket.get(s.key);
    if (object === null) {
      problems.push({ key: s.key, problem: "missing from R2" });
      continue;
    }
    const bytes = new Uint8Array(await object.arrayBuffer());
    const sha = await sha256Bytes(bytes);
    if (sha !== s.sha256 || bytes.byteLength !== s.bytes) {
      problems.push({ key: s.key, problem: `content differs from the manifest (sha256 ${sha.slice(0, 12)}…, ${bytes.byteLength} bytes)` });
      continue;
    }
    const lines = segmentLines(await gunzip(bytes));
    if (lines.length !== s.count) problems.push({ key: s.key, problem: `holds ${lines.length} events, manifest says ${s.count}` });
    lines.forEach((line, i) => {
      const sequence = (JSON.parse(line) as { sequence?: string }).sequence;
      if (sequence !== formatSequence(s.first + i))
        problems.push({ key: s.key, problem: `line ${i + 1} is sequence ${sequence}, expected ${s.first + i}` });
    });
  }
  return { ok: problems.length === 0, segments: manifest.segments.length, problems };
}
