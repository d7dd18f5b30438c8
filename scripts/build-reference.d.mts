/** Types of scripts/build-reference.mjs for the TypeScript that imports it (vitest configs, tests). */
/** The assets directory of wrangler.toml's [assets] (ADR 0043). */
export declare const ASSETS_DIR: string;
/** The @scalar/api-reference version package.json pins exactly. */
export declare function pinnedVersion(): string;
/** The renderer's path in the assets directory: docs/scalar-<version>.js. */
export declare function referenceAsset(version?: string): string;
/** Copies the installed standalone bundle there when it changed; returns whether it wrote. */
export declare function buildReference(): boolean;
