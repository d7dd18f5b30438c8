import { API, optional } from "./api";
import { isNum } from "./format";
import { sampleOf } from "./model";
import { state } from "./state";
import type { Sample } from "./types";
import type { HistoryDoc } from "./wire";

/**
 * The charts' past, on open: GET /v1/metrics/history gives the server's windowed totals at each
 * snapshot of its ring (the same figures GET /v1/metrics `recent` gives for now), so the charts
 * show the last minutes at once instead of filling up while the page is open.
 */
export async function loadHistory(): Promise<void> {
  const generation = state.generation;
  const res = await optional("history", API.history);
  if (generation !== state.generation) return;
  const doc = res.body as HistoryDoc | null | undefined;
  if (!doc || typeof doc !== "object" || !Array.isArray(doc.samples)) return;
  if (isNum(doc.historySeconds)) state.historyMs = doc.historySeconds * 1000;
  const older: Sample[] = [];
  for (const raw of doc.samples) {
    const sample = sampleOf(raw, Date.parse(String(raw.at)));
    if (sample && Number.isFinite(sample.t)) older.push(sample);
  }
  const firstKept = state.samples[0]?.t ?? Number.POSITIVE_INFINITY;
  state.samples = [...older.filter((x) => x.t < firstKept), ...state.samples];
}
