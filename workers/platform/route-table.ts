/**
 * The methods each registered path allows, derived from the app's own routes (Hono's `app.routes`
 * after every route is mounted), for 405 + `Allow`. Nothing to keep in step by hand: a new route is
 * in the table the moment it is registered. GET implies HEAD (Hono answers HEAD with the GET route).
 */

export interface RouteEntry {
  pattern: RegExp;
  methods: string[];
}

const ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/** `/v1/topics/:topic/events` → /^\/v1\/topics\/[^/]+\/events$/ (parameters match one segment). */
export function pathPattern(path: string): RegExp {
  const source = path
    .split("/")
    .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${source}$`);
}

/** The table for `routes` (middleware, registered for every method, is left out). */
export function routeTable(routes: readonly { path: string; method: string }[]): RouteEntry[] {
  const byPath = new Map<string, Set<string>>();
  for (const { path, method } of routes) {
    if (method === "ALL" || path.includes("*")) continue;
    const methods = byPath.get(path) ?? new Set<string>();
    methods.add(method.toUpperCase());
    if (method.toUpperCase() === "GET") methods.add("HEAD");
    byPath.set(path, methods);
  }
  return [...byPath].map(([path, methods]) => ({
    pattern: pathPattern(path),
    methods: [...methods].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b)),
  }));
}

/**
 * The methods allowed on `path`, or undefined when no route has that shape. Several registered
 * shapes can match one path (`/v1/orders/:id` and a literal sibling): their methods are merged.
 */
export function allowedMethods(table: readonly RouteEntry[], path: string): string[] | undefined {
  const matches = table.filter((entry) => entry.pattern.test(path));
  if (matches.length === 0) return undefined;
  const methods = new Set(matches.flatMap((entry) => entry.methods));
  return [...methods].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));
}
