/**
 * Deliveries an ordered subscription may spend waiting for a predecessor (they are not handler
 * failures); the queue's `max_retries` leaves room for them on top of `maxRetries`. The platform's
 * config check (shared/config.ts) sizes each ordered subscription's queue with it.
 */
export const ORDERING_DEFERRALS = 20;
