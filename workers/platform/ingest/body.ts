import { EventlineError } from "../../../shared/errors";

const DECIMAL = /^\d+$/;

/**
 * Reads a request body, refusing it once it exceeds `max` bytes: by Content-Length before
 * reading anything; with a declared length within the limit (which HTTP framing holds the body
 * to) in one read, checked after; without one while streaming, so an oversize body from the
 * network is never buffered whole.
 */
export async function readBodyWithLimit(request: Request, max: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > max) throw tooLarge(max, Number(declared));
  if (request.body === null) return new Uint8Array();
  if (declared !== null && DECIMAL.test(declared)) {
    // Over HTTP the body is framed by this Content-Length (at most `max`), so it can be read in
    // one call rather than chunk by chunk; a Request built in-process may still carry more
    // than it declares, hence the check after reading.
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.byteLength > max) throw tooLarge(max, body.byteLength);
    return body;
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw tooLarge(max, total);
    }
    chunks.push(value);
  }
  // Most bodies arrive in one chunk: no copy needed.
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function tooLarge(max: number, seen: number): EventlineError {
  return new EventlineError("payload_too_large", `request body is larger than the ${max}-byte limit (at least ${seen} bytes)`, {
    extensions: { limitBytes: max },
  });
}
