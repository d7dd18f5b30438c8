/** One server-sent event: its `event:` name (the block's first line) and its `data:` lines joined. */
export interface SseEvent {
  event: string;
  data: string;
}

/**
 * Splits a server-sent-events stream into events as its text arrives, for tests in both workerd
 * and Node (no imports): `push` takes the next decoded text and returns the events it completed.
 */
export function sseSplitter(): { push: (text: string) => SseEvent[] } {
  let text = "";
  return {
    push(more) {
      text += more;
      const out: SseEvent[] = [];
      for (let cut = text.indexOf("\n\n"); cut >= 0; cut = text.indexOf("\n\n")) {
        const block = text.slice(0, cut);
        text = text.slice(cut + 2);
        const lines = block.split("\n");
        const first = lines[0] ?? "";
        const data = lines
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5))
          .join("\n");
        out.push({ event: first.startsWith("event:") ? first.slice(6).trim() : "", data });
      }
      return out;
    },
  };
}
