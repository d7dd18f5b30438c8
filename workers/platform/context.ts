import type { Logger } from "../../sdk/logger";
import type { EventlineConfig } from "../../shared/config";
import type { Principal } from "./auth/identity";

/** Hono environment shared by every route group of the platform Worker. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    requestId: string;
    /** The app's validated config (eventline.config.ts, or a test's). */
    config: EventlineConfig;
    /** The request's trace context: the valid incoming `traceparent` header, else undefined. */
    incomingTraceparent: string | undefined;
    /** The traceparent this request logs under (set by ingest to the events' trace). */
    traceparent: string;
    log: Logger;
    /** Who is calling (set by the authentication middleware; absent only on public paths). */
    principal: Principal;
    /** Set by the route's `access` declaration once the caller is authorized. */
    authorized: boolean;
    /** Extra members for the route's audit record (e.g. the id of a created key). */
    auditDetails: Record<string, unknown>;
  };
}
