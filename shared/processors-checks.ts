import type { z } from "zod";
import { type ProcessorConfig, planProcessor, repartitionTopicOf } from "./processors-config";

/**
 * The cross-checks of `processors` against the rest of the config (its topics and
 * subscriptions), each naming the field at fault: `npm run build`, `npm test` and `npm start` fail
 * on the first load with that message.
 */

interface Checked {
  topics: { name: string; partitions: number; internal: boolean }[];
  subscriptions: { name: string }[];
  processors: ProcessorConfig[];
}

export function checkProcessors(cfg: Checked, ctx: z.RefinementCtx): void {
  const topics = new Map(cfg.topics.map((t) => [t.name, t]));
  const names = new Set<string>();
  const subscriptions = new Set(cfg.subscriptions.map((s) => s.name));
  const repartition = new Set(cfg.processors.map((p) => repartitionTopicOf(p.name)));
  cfg.topics.forEach((t, i) => {
    if (t.name.startsWith("processor.") && (!repartition.has(t.name) || !t.internal))
      ctx.addIssue({
        code: "custom",
        message: `topic names starting with "processor." are reserved for processors' internal topics`,
        path: ["topics", i, "name"],
      });
  });
  cfg.processors.forEach((p, i) => {
    const at = (...path: PropertyKey[]) => ["processors", i, ...path];
    if (names.has(p.name)) ctx.addIssue({ code: "custom", message: `duplicate processor name "${p.name}"`, path: at("name") });
    names.add(p.name);
    if (subscriptions.has(p.name))
      ctx.addIssue({
        code: "custom",
        message: `"${p.name}" is also a subscription's name; processors and subscriptions share names`,
        path: at("name"),
      });
    const input = topics.get(p.input.topic);
    if (input === undefined) ctx.addIssue({ code: "custom", message: `unknown topic "${p.input.topic}"`, path: at("input", "topic") });
    else if (input.name.startsWith("processor."))
      ctx.addIssue({ code: "custom", message: "a processor cannot read another processor's internal topic", path: at("input", "topic") });
    const output = topics.get(p.output.topic);
    if (output === undefined) ctx.addIssue({ code: "custom", message: `unknown topic "${p.output.topic}"`, path: at("output", "topic") });
    else if (p.output.topic === p.input.topic)
      ctx.addIssue({ code: "custom", message: "a processor's output topic must differ from its input topic", path: at("output", "topic") });
    else if (output.name.startsWith("processor."))
      ctx.addIssue({ code: "custom", message: "a processor cannot write another processor's internal topic", path: at("output", "topic") });
    if (p.kind === "pattern" && p.output.table)
      ctx.addIssue({
        code: "custom",
        message: "only window results (kind aggregate) are upserted into processor_windows",
        path: at("output", "table"),
      });
    // A field that failed its own check (a malformed duration) is reported already; no plan can be made.
    let plan: ReturnType<typeof planProcessor>;
    try {
      plan = planProcessor(p, input?.partitions ?? 1);
    } catch {
      return;
    }
    if ("issues" in plan) {
      for (const issue of plan.issues) {
        // The engine's spec names its own fields (sizeMs, aggregates[0].name): map back to the declaration's.
        const [head, ...rest] = issue.path;
        const path =
          head === "graceMs" ? ["grace"] : head === "watermark" ? ["watermark"] : head === "window" ? ["window"] : [head ?? "", ...rest];
        ctx.addIssue({ code: "custom", message: issue.message, path: at(...path) });
      }
    }
  });
}
