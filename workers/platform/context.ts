import type { Logger } from "../../shared/logger";

/** Hono environment shared by every route group of the platform Worker. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    requestId: string;
    /** The request's trace context: the valid incoming `traceparent` header, else undefined. */
    incomingTraceparent: string | undefined;
    /** The traceparent this request logs under (set by ingest to the events' trace). */
    traceparent: string;
    log: Logger;
  };
}
