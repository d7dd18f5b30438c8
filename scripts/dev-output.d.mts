/** Types of scripts/dev-output.mjs for the TypeScript that imports it (test/cli/start.test.ts). */
export interface Decision {
  show: boolean;
  ready?: string;
}
export declare function createOutputFilter(options: { verbose: boolean }): (line: string) => Decision;
export declare function banner(options: { url: string; state: string; defaultState: boolean; verbose: boolean }): string;
