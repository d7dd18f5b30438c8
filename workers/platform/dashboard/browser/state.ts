import type { GraphRefs, Model, Sample, SubscriptionMeta } from "./types";

export const TOKEN_KEY = "eventline.dashboard.token";
export const POLL_MS = 2000;
export const WINDOW_MS = 5 * 60 * 1000;
/** An optional endpoint that answered 404 is asked again after this long (it may be deployed meanwhile). */
export const PROBE_MS = 30000;
export const PAGE_SIZE = 20;

/** The page's one mutable state; `generation` changes on every sign-in and sign-out so late answers are dropped. */
export const state = {
  token: null as string | null,
  timer: 0,
  generation: 0,
  prev: null as Model | null,
  model: null as Model | null,
  samples: [] as Sample[],
  /** How far back the charts go: the server's history (GET /v1/metrics/history), else WINDOW_MS. */
  historyMs: 0,
  /** When an optional endpoint last answered "not here", by key. */
  missing: {} as Record<string, number>,
  meta: {} as Record<string, SubscriptionMeta>,
  metaAt: 0,
  graphSig: "",
  graphRefs: null as GraphRefs | null,
  /** Bumped whenever the detail view changes, so an earlier view's late answer is not drawn. */
  detailSeq: 0,
  redriving: false,
  /** The user turned "Follow live" off: topic views at the tail do not follow until it is turned on again. */
  livePaused: false,
};
