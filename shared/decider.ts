/**
 * A pure decide/evolve model for event-sourced aggregates. The state of an aggregate is never
 * stored as the source of truth: it is a left fold of its event stream, and commands are judged
 * against that state to produce new events. Keeping both functions pure (no I/O, no clock, no
 * randomness) lets the same code run in a Durable Object, a test or a replay tool, and lets
 * snapshots be checked against a full replay.
 */

/**
 * Why a command was refused. Routes map these to HTTP: `not_found` → 404, `already_exists` and
 * `rejected` → 422 (the request is well-formed but breaks a domain rule, so it is not a conflict
 * a retry could resolve).
 */
export type DomainErrorCode = "not_found" | "already_exists" | "rejected";

/** A command that breaks a domain rule; the message names the rule so it can be shown to a client. */
export class DomainError extends Error {
  override readonly name = "DomainError";
  readonly code: DomainErrorCode;

  constructor(code: DomainErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface Decider<Command, Event, State> {
  /** The state before the first event: what an empty stream folds to. */
  initialState: State;
  /** Judges a command against the current state; throws DomainError instead of emitting when it is not allowed. */
  decide(command: Command, state: State): Event[];
  /** Applies one recorded fact. Must not throw or mutate: past events cannot be refused. */
  evolve(state: State, event: Event): State;
}

/**
 * Replays events onto a state. `from` defaults to the initial state; pass a snapshot to replay
 * only the tail of a stream.
 */
export function fold<Command, Event, State>(
  decider: Decider<Command, Event, State>,
  events: readonly Event[],
  from: State = decider.initialState,
): State {
  let state = from;
  for (const event of events) state = decider.evolve(state, event);
  return state;
}
