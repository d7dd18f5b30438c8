import type { Grant } from "../../../shared/security/grants";

/**
 * Who is calling, as authentication establishes it (auth/principal.ts) and every route reads it
 * (`c.get("principal")`, context.ts). A module of its own so that the request context and the
 * authenticator do not import each other.
 */
export interface Principal {
  /** Stable id for audit records and rate limits: `admin`, `key:<id>`, `jwt:<iss>#<sub>`, `anonymous`. */
  id: string;
  kind: "admin-key" | "api-key" | "jwt" | "anonymous";
  tenant?: string;
  grants: Grant[];
  /** An API key's expiry: the keys it mints expire no later (routes/keys.ts). */
  expiresAt?: Date;
}
