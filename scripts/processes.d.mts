/** Types of scripts/processes.mjs for the TypeScript that imports it (test/cli/stack.ts). */
import type { ChildProcess } from "node:child_process";
export declare function freePort(): Promise<number>;
export declare function stopProcessGroup(child: ChildProcess): Promise<void>;
