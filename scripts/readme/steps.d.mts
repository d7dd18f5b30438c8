/** Types of scripts/readme/steps.mjs for the TypeScript that imports it (test/cli/readme.test.ts). */
export interface Block {
  line: number;
  code: string;
}
export interface Step {
  block: number;
  line: number;
  command: string;
  expect: string[];
}
export interface StepRun {
  code: number | null;
  stdout: string;
  stderr: string;
  statuses: number[];
}
export declare function shellBlocks(markdown: string): Block[];
export declare function stepsOf(block: Block, index: number): Step[];
export declare function readmeSteps(markdown: string): Step[];
export declare function shownPairs(shown: string): { key: string; value: unknown; prefix: boolean }[];
export declare function problems(step: Step, run: StepRun): string[];
