export type Direction = "backward" | "forward";

/** A change between two schemas, with the directions of compatibility it breaks. */
export interface Finding {
  path: string;
  message: string;
  breaks: readonly Direction[];
}

export const BACKWARD: readonly Direction[] = ["backward"];
export const FORWARD: readonly Direction[] = ["forward"];
export const BOTH: readonly Direction[] = ["backward", "forward"];
