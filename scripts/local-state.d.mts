/** Types of scripts/local-state.mjs for the TypeScript that imports it (test/cli/start.test.ts). */
export declare const DEFAULT_STATE: string;
export declare const PID_FILE: string;
