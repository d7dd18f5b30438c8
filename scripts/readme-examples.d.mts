/** Types of scripts/readme-examples.mjs for the TypeScript that imports it (test/cli/readme.test.ts). */
import type { Step, StepRun } from "./readme/steps.mjs";
export interface StepResult extends StepRun {
  step: Step;
  problems: string[];
}
export declare function startLocalStack(options?: { timeoutMs?: number }): Promise<{
  url: string;
  output: () => string;
  stop: () => Promise<void>;
}>;
export declare function runReadme(options: { url: string; readme?: string; timeoutMs?: number }): Promise<StepResult[]>;
