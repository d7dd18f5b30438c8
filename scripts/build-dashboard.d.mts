/** Types of scripts/build-dashboard.mjs for the TypeScript that imports it (vitest configs, tests). */
export declare const DASHBOARD_BUNDLE: string;
/** The dashboard's browser code (workers/platform/dashboard/browser/main.ts) bundled into one classic script. */
export declare function bundleDashboard(): string;
/** Writes workers/platform/dashboard/bundle.generated.ts when its content changes; true when it wrote. */
export declare function buildDashboard(): boolean;
