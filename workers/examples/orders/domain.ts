import { z } from "zod";
import { type Decider, DomainError } from "../../../shared/decider";
import { orderEventSchemas } from "./schemas";

/**
 * The order aggregate of the "orders" demo topic, as a pure decider. Its events are exactly the
 * CloudEvents (`type` + `data`) that the topic's schemas in eventline.config.ts accept, so what
 * `decide` emits can be appended to the log without translation, and the log can be folded back.
 */

type OrderEventSchemas = typeof orderEventSchemas;
export type OrderEventType = keyof OrderEventSchemas;

/** Every order event type, in lifecycle order. */
export const ORDER_EVENT_TYPES = [
  "orders.placed",
  "orders.line-added",
  "orders.line-removed",
  "orders.paid",
  "orders.shipped",
  "orders.cancelled",
] as const;

// Compile-time check that the list and the config's schemas name the same types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const eventTypesMatchConfig: Same<(typeof ORDER_EVENT_TYPES)[number], OrderEventType> = true;
void eventTypesMatchConfig;

export type OrderEventData<T extends OrderEventType> = z.output<OrderEventSchemas[T]>;

/** One event as recorded in the log: the CloudEvent's `type` and its `data`. */
export type OrderEvent = { [T in OrderEventType]: { type: T; data: OrderEventData<T> } }[OrderEventType];

const lineSchema = orderEventSchemas["orders.line-added"].shape.line;
export type OrderLine = z.output<typeof lineSchema>;

/** The placed event's schema allows at most this many lines; later additions keep to it too. */
export const MAX_ORDER_LINES = 100;

// ---------------------------------------------------------------------------------------------
// HTTP command bodies: each is its event's data without `orderId` (the route knows the id), so a
// body that parses can only fail in `decide` for a domain reason, never for a field rule.

export const placeOrderBody = orderEventSchemas["orders.placed"].omit({ orderId: true }).strict();
export const addLineBody = orderEventSchemas["orders.line-added"].omit({ orderId: true }).strict();
export const removeLineBody = orderEventSchemas["orders.line-removed"].omit({ orderId: true }).strict();
export const payBody = orderEventSchemas["orders.paid"].omit({ orderId: true }).strict();
export const shipBody = orderEventSchemas["orders.shipped"].omit({ orderId: true }).strict();
export const cancelBody = orderEventSchemas["orders.cancelled"].omit({ orderId: true }).strict();

export type OrderCommand =
  | ({ kind: "place"; orderId: string } & z.output<typeof placeOrderBody>)
  | ({ kind: "add-line" } & z.output<typeof addLineBody>)
  | ({ kind: "remove-line" } & z.output<typeof removeLineBody>)
  | ({ kind: "pay" } & z.output<typeof payBody>)
  | ({ kind: "ship" } & z.output<typeof shipBody>)
  | ({ kind: "cancel" } & z.output<typeof cancelBody>);

export type OrderCommandKind = OrderCommand["kind"];

/** A command as it crosses into the partition log that runs it: the route's body plus `kind` (and the id for place). */
export const orderCommandSchema: z.ZodType<OrderCommand> = z.discriminatedUnion("kind", [
  placeOrderBody.extend({ kind: z.literal("place"), orderId: orderEventSchemas["orders.placed"].shape.orderId }),
  addLineBody.extend({ kind: z.literal("add-line") }),
  removeLineBody.extend({ kind: z.literal("remove-line") }),
  payBody.extend({ kind: z.literal("pay") }),
  shipBody.extend({ kind: z.literal("ship") }),
  cancelBody.extend({ kind: z.literal("cancel") }),
]);

/** Body schema per command on an existing order (place has its own route, which also names the id). */
export const commandBodies = {
  "add-line": addLineBody,
  "remove-line": removeLineBody,
  pay: payBody,
  ship: shipBody,
  cancel: cancelBody,
} as const satisfies Record<Exclude<OrderCommandKind, "place">, z.ZodType>;

// ---------------------------------------------------------------------------------------------
// State

export const ORDER_STATUSES = ["none", "open", "paid", "shipped", "cancelled"] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/**
 * An order as its events leave it. A plain JSON object so it can be snapshotted.
 * Invariants (checked by orderStateSchema): with status `none` there is no id, customer,
 * currency or line; otherwise all three are set and there is at least one line, SKUs are unique,
 * `total` is Σ quantity × unitPrice, and `paid` is 0 or (once paid) equal to `total`.
 */
export interface OrderState {
  status: OrderStatus;
  orderId?: string;
  customerId?: string;
  currency?: string;
  lines: OrderLine[];
  /** Minor units. */
  total: number;
  /** Minor units received; stays set after a cancellation (refunds are out of scope). */
  paid: number;
}

const initialState: OrderState = { status: "none", lines: [], total: 0, paid: 0 };

const placedShape = orderEventSchemas["orders.placed"].shape;
const amountSchema = orderEventSchemas["orders.paid"].shape.amount;

const sumLines = (lines: readonly OrderLine[]): number => lines.reduce((sum, l) => sum + l.quantity * l.unitPrice, 0);

/** Validates a state read back from a snapshot, invariants included, so a corrupt snapshot is never folded onto. */
export const orderStateSchema: z.ZodType<OrderState> = z
  .object({
    status: z.enum(ORDER_STATUSES),
    orderId: placedShape.orderId.optional(),
    customerId: placedShape.customerId.optional(),
    currency: placedShape.currency.optional(),
    lines: z.array(lineSchema).max(MAX_ORDER_LINES),
    total: amountSchema,
    paid: amountSchema,
  })
  .strict()
  .superRefine((s, ctx) => {
    const issue = (message: string, path: string) => ctx.addIssue({ code: "custom", message, path: [path] });
    const identified = s.orderId !== undefined && s.customerId !== undefined && s.currency !== undefined;
    const anonymous = s.orderId === undefined && s.customerId === undefined && s.currency === undefined;
    if (s.status === "none") {
      if (!anonymous) issue("an order with status none has no orderId, customerId or currency", "status");
      if (s.lines.length > 0) issue("an order with status none has no lines", "lines");
      if (s.paid !== 0) issue("an order with status none has paid nothing", "paid");
    } else {
      if (!identified) issue(`an order with status ${s.status} has orderId, customerId and currency`, "status");
      if (s.lines.length === 0) issue("an existing order has at least one line", "lines");
      const expectedPaid = s.status === "open" ? [0] : s.status === "cancelled" ? [0, s.total] : [s.total];
      if (!expectedPaid.includes(s.paid)) issue(`paid must be ${expectedPaid.join(" or ")} for status ${s.status}`, "paid");
    }
    if (new Set(s.lines.map((l) => l.sku)).size !== s.lines.length) issue("SKUs must be unique", "lines");
    if (s.total !== sumLines(s.lines)) issue("total must equal the sum of quantity × unitPrice over the lines", "total");
  });

/** Bump when OrderState's shape or meaning changes: older snapshots are then refused and the stream is replayed instead. */
export const SNAPSHOT_SCHEMA_VERSION = 1;

export function serializeState(state: OrderState): string {
  return JSON.stringify({ version: SNAPSHOT_SCHEMA_VERSION, state });
}

/** Parses a snapshot written by serializeState; throws on other versions or an invalid state. */
export function deserializeState(text: string): OrderState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new Error("order snapshot is not JSON", { cause });
  }
  const envelope = z.object({ version: z.number(), state: z.unknown() }).strict().safeParse(parsed);
  if (!envelope.success) throw new Error("order snapshot must be { version, state }", { cause: envelope.error });
  if (envelope.data.version !== SNAPSHOT_SCHEMA_VERSION) {
    throw new Error(`order snapshot has version ${envelope.data.version}, expected ${SNAPSHOT_SCHEMA_VERSION}`);
  }
  const state = orderStateSchema.safeParse(envelope.data.state);
  if (!state.success) throw new Error(`invalid order snapshot: ${z.prettifyError(state.error)}`, { cause: state.error });
  return state.data;
}

// ---------------------------------------------------------------------------------------------
// decide

const rejected = (message: string) => new DomainError("rejected", message);

/** The config's schemas, typed per event type so a generic lookup keeps its data type. */
const eventDataSchemas: { [T in OrderEventType]: z.ZodType<OrderEventData<T>> } = orderEventSchemas;

/**
 * Builds an event and checks it against the topic's schema. The command types cannot express
 * every field rule (lengths, integer ranges), and an event the topic would refuse must never
 * be decided, so a field that breaks a rule refuses the command instead.
 */
function emit<T extends OrderEventType>(type: T, data: OrderEventData<T>): OrderEvent[] {
  const result = eventDataSchemas[type].safeParse(data);
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join(".") || "(data)"}: ${i.message}`).join("; ");
    throw rejected(`invalid ${type} data: ${detail}`);
  }
  // The parsed copy, so the event shares no objects with the command.
  return [{ type, data: result.data } as OrderEvent];
}

/** The total must stay exactly representable, or paying it could not be checked. */
function assertSafeTotal(lines: readonly OrderLine[]): void {
  // Non-integer fields are left to the schema check, which names the field.
  if (sumLines(lines) > Number.MAX_SAFE_INTEGER) throw rejected("the order total must not exceed Number.MAX_SAFE_INTEGER minor units");
}

/** Lines change only while the order is open: once paid, the amount is fixed. */
function assertOpenForLines(state: OrderState, orderId: string): void {
  if (state.status !== "open") throw rejected(`order ${orderId} is ${state.status}; lines can only change while it is open`);
}

function decide(command: OrderCommand, state: OrderState): OrderEvent[] {
  if (command.kind === "place") {
    if (state.status !== "none") throw new DomainError("already_exists", `order ${state.orderId ?? command.orderId} already exists`);
    if (command.lines.length === 0) throw rejected("an order needs at least one line");
    if (command.lines.length > MAX_ORDER_LINES) throw rejected(`an order has at most ${MAX_ORDER_LINES} lines`);
    const skus = new Set<string>();
    for (const line of command.lines) {
      if (skus.has(line.sku)) throw rejected(`SKU ${line.sku} appears on more than one line; combine them into one`);
      skus.add(line.sku);
    }
    assertSafeTotal(command.lines);
    const { orderId, customerId, currency, lines } = command;
    return emit("orders.placed", { orderId, customerId, currency, lines });
  }

  const { orderId, currency } = state;
  if (state.status === "none" || orderId === undefined || currency === undefined) throw new DomainError("not_found", "no such order");

  switch (command.kind) {
    case "add-line": {
      assertOpenForLines(state, orderId);
      if (state.lines.some((l) => l.sku === command.line.sku)) {
        throw rejected(`SKU ${command.line.sku} is already on order ${orderId}; remove it first to change it`);
      }
      if (state.lines.length >= MAX_ORDER_LINES) throw rejected(`an order has at most ${MAX_ORDER_LINES} lines`);
      assertSafeTotal([...state.lines, command.line]);
      return emit("orders.line-added", { orderId, line: command.line });
    }
    case "remove-line": {
      assertOpenForLines(state, orderId);
      if (!state.lines.some((l) => l.sku === command.sku)) throw rejected(`SKU ${command.sku} is not on order ${orderId}`);
      if (state.lines.length === 1) throw rejected("cannot remove the last line of an order; cancel the order instead");
      return emit("orders.line-removed", { orderId, sku: command.sku });
    }
    case "pay": {
      if (state.status !== "open") throw rejected(`order ${orderId} is ${state.status}; only an open order can be paid`);
      if (command.currency !== currency) throw rejected(`payment currency ${command.currency} differs from the order's ${currency}`);
      if (command.amount !== state.total) throw rejected(`payment of ${command.amount} must equal the order total ${state.total}`);
      return emit("orders.paid", { orderId, amount: command.amount, currency });
    }
    case "ship": {
      if (state.status !== "paid") throw rejected(`order ${orderId} is ${state.status}; only a paid order can be shipped`);
      return emit("orders.shipped", command.carrier === undefined ? { orderId } : { orderId, carrier: command.carrier });
    }
    case "cancel": {
      if (state.status === "shipped") throw rejected(`order ${orderId} has shipped and can no longer be cancelled`);
      if (state.status === "cancelled") throw rejected(`order ${orderId} is already cancelled`);
      return emit("orders.cancelled", command.reason === undefined ? { orderId } : { orderId, reason: command.reason });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// evolve

const copyLine = ({ sku, quantity, unitPrice }: OrderLine): OrderLine => ({ sku, quantity, unitPrice });

/** A fresh state sharing nothing with its input, with `total` recomputed so it cannot drift from the lines. */
function withLines(state: OrderState, lines: readonly OrderLine[], changes: Partial<OrderState> = {}): OrderState {
  const copied = lines.map(copyLine);
  return { ...state, ...changes, lines: copied, total: sumLines(copied) };
}

function evolve(state: OrderState, event: OrderEvent): OrderState {
  switch (event.type) {
    case "orders.placed": {
      const { orderId, customerId, currency, lines } = event.data;
      return withLines(initialState, lines, { status: "open", orderId, customerId, currency });
    }
    case "orders.line-added":
      return withLines(state, [...state.lines, event.data.line]);
    case "orders.line-removed":
      return withLines(
        state,
        state.lines.filter((l) => l.sku !== event.data.sku),
      );
    case "orders.paid":
      return withLines(state, state.lines, { status: "paid", paid: event.data.amount });
    case "orders.shipped":
      return withLines(state, state.lines, { status: "shipped" });
    case "orders.cancelled":
      return withLines(state, state.lines, { status: "cancelled" });
    default:
      // A type this code does not know (a newer writer): leave the state as it was.
      return withLines(state, state.lines);
  }
}

export const orderDecider: Decider<OrderCommand, OrderEvent, OrderState> = { initialState, decide, evolve };
