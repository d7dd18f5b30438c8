const encoder = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** The SHA-256 of `text` (UTF-8) as lowercase hex. */
export function sha256Hex(text: string): Promise<string> {
  return sha256HexOfBytes(encoder.encode(text));
}

/** The SHA-256 of `bytes` as lowercase hex. */
export async function sha256HexOfBytes(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  let hex = "";
  for (let i = 0; i < digest.length; i++) hex += HEX[digest[i] as number];
  return hex;
}
