import { z } from "zod";

/**
 * Content-based routing filters in the style of EventBridge event patterns, evaluated against a
 * CloudEvent in JSON format (attributes at the top level, `data` nested):
 *
 *   { "type": ["orders.placed", { "prefix": "orders." }],          // any matcher in the list
 *     "data": { "total": [{ "numeric": [">=", 100, "<", 1000] }],   // nested fields under data
 *               "coupon": [{ "exists": false }] },
 *     "$or": [ { "subject": [{ "suffix": "-vip" }] }, { "priority": [1] } ] }
 *
 * Every key must match (AND); a key's list matches when any matcher does (OR); `$or` holds
 * alternative patterns, one of which must match. An array value matches when any element does.
 * A missing field matches only `{ "exists": false }`; `anything-but` needs the field present.
 */

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const numericOp = z.enum(["<", "<=", "=", ">", ">="]);

const matcherSchema = z.union([
  scalar,
  z.object({ prefix: z.string().min(1) }).strict(),
  z.object({ suffix: z.string().min(1) }).strict(),
  z.object({ exists: z.boolean() }).strict(),
  z
    .object({
      "anything-but": z.union([
        z.string(),
        z.number(),
        z.array(z.union([z.string(), z.number()])).min(1),
        z.object({ prefix: z.string().min(1) }).strict(),
        z.object({ suffix: z.string().min(1) }).strict(),
      ]),
    })
    .strict(),
  z
    .object({
      numeric: z.union([z.tuple([numericOp, z.number()]), z.tuple([numericOp, z.number(), numericOp, z.number()])]),
    })
    .strict(),
]);
export type Matcher = z.infer<typeof matcherSchema>;

export interface FilterPattern {
  [key: string]: Matcher[] | FilterPattern | FilterPattern[];
}

export interface FilterIssue {
  path: string;
  message: string;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Structural check with a JSON Pointer per problem: a field maps to matchers or a nested pattern. */
function patternIssues(value: unknown, path: string, depth = 0): FilterIssue[] {
  if (!isPlainObject(value)) return [{ path: path || "/", message: "a pattern is a JSON object" }];
  if (depth > 8) return [{ path, message: "patterns nest at most 8 levels" }];
  if (Object.keys(value).length === 0) return [{ path: path || "/", message: "a pattern needs at least one field" }];
  const issues: FilterIssue[] = [];
  for (const [key, rule] of Object.entries(value)) {
    const here = `${path}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
    if (key === "$or") {
      if (!Array.isArray(rule) || rule.length < 2) issues.push({ path: here, message: "$or takes a list of at least two patterns" });
      else for (const [i, alt] of rule.entries()) issues.push(...patternIssues(alt, `${here}/${i}`, depth + 1));
    } else if (Array.isArray(rule)) {
      if (rule.length === 0) issues.push({ path: here, message: "a matcher list must not be empty" });
      rule.forEach((m, i) => {
        const parsed = matcherSchema.safeParse(m);
        if (!parsed.success)
          issues.push({ path: `${here}/${i}`, message: `not a matcher: ${z.prettifyError(parsed.error).replaceAll("\n", " ")}` });
      });
    } else if (isPlainObject(rule)) {
      issues.push(...patternIssues(rule, here, depth + 1));
    } else {
      issues.push({ path: here, message: 'a field takes a list of matchers (e.g. ["a", {"prefix": "b"}]) or a nested pattern' });
    }
  }
  return issues;
}

/** zod schema for a filter pattern, for request bodies and config. */
export const filterSchema = z.custom<FilterPattern>().superRefine((value, ctx) => {
  for (const issue of patternIssues(value, "")) ctx.addIssue({ code: "custom", message: `${issue.path}: ${issue.message}` });
});

export type Filter = (event: Record<string, unknown>) => boolean;

function compare(op: z.infer<typeof numericOp>, a: number, b: number): boolean {
  switch (op) {
    case "<":
      return a < b;
    case "<=":
      return a <= b;
    case "=":
      return a === b;
    case ">":
      return a > b;
    case ">=":
      return a >= b;
  }
}

function matchOne(m: Matcher, present: boolean, value: unknown): boolean {
  if (m === null || typeof m !== "object") return present && value === m;
  if ("exists" in m) return m.exists === present;
  if (!present) return false;
  if ("prefix" in m) return typeof value === "string" && value.startsWith(m.prefix);
  if ("suffix" in m) return typeof value === "string" && value.endsWith(m.suffix);
  if ("numeric" in m) {
    if (typeof value !== "number") return false;
    const [op1, n1, op2, n2] = m.numeric;
    return compare(op1, value, n1) && (op2 === undefined || n2 === undefined || compare(op2, value, n2));
  }
  const but = m["anything-but"];
  if (Array.isArray(but)) return !but.includes(value as string | number);
  if (typeof but === "object") {
    if (typeof value !== "string") return true;
    return "prefix" in but ? !value.startsWith(but.prefix) : !value.endsWith(but.suffix);
  }
  return value !== but;
}

function matchValue(matchers: Matcher[], present: boolean, value: unknown): boolean {
  return matchers.some((m) => {
    // `exists` is about the field, whatever its value (an empty array included).
    if (m !== null && typeof m === "object" && "exists" in m) return m.exists === present;
    // An array field matches when any element matches (EventBridge semantics).
    if (present && Array.isArray(value)) return value.some((v) => matchOne(m, true, v));
    return matchOne(m, present, value);
  });
}

export function matches(pattern: FilterPattern, event: Record<string, unknown>): boolean {
  for (const [key, rule] of Object.entries(pattern)) {
    if (key === "$or") {
      if (!(rule as FilterPattern[]).some((alt) => matches(alt, event))) return false;
      continue;
    }
    const present = Object.hasOwn(event, key) && event[key] !== undefined;
    const value = present ? event[key] : undefined;
    if (Array.isArray(rule)) {
      if (!matchValue(rule as Matcher[], present, value)) return false;
    } else {
      const nested = value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
      if (!matches(rule, nested)) return false;
    }
  }
  return true;
}

export class FilterError extends Error {
  override readonly name = "FilterError";
  constructor(readonly issues: FilterIssue[]) {
    super(`invalid filter: ${issues.map((i) => `${i.path || "/"}: ${i.message}`).join("; ")}`);
  }
}

/**
 * The top-level attributes a pattern looks at (through `$or` too), so a caller holding only some
 * attributes of an event knows whether they are enough to evaluate it.
 */
export function patternKeys(pattern: FilterPattern): Set<string> {
  const keys = new Set<string>();
  for (const [key, rule] of Object.entries(pattern)) {
    if (key === "$or") for (const alt of rule as FilterPattern[]) for (const k of patternKeys(alt)) keys.add(k);
    else keys.add(key);
  }
  return keys;
}

/** Validates a pattern and returns its predicate; throws FilterError naming each bad path. */
export function compileFilter(pattern: unknown): Filter {
  if (pattern === undefined) return () => true;
  const issues = patternIssues(pattern, "");
  if (issues.length > 0) throw new FilterError(issues);
  const p = pattern as FilterPattern;
  return (event) => matches(p, event);
}
