/**
 * The name of the PartitionLog Durable Object serving one partition of one topic:
 * `<topic>/<partition>`. The name is the object's identity (`getByName` derives the object id
 * from it), so its format is storage format: existing objects are found only under it. Every
 * caller builds it here and the object parses it back here, so the two cannot drift apart.
 */
export function partitionName(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

/**
 * The (topic, partition) of a name made by partitionName; undefined for anything else. Topic
 * names cannot contain "/", but the last slash is taken anyway, so a topic with one still parses.
 */
export function parsePartitionName(name: string): { topic: string; partition: number } | undefined {
  const slash = name.lastIndexOf("/");
  if (slash <= 0) return undefined;
  const digits = name.slice(slash + 1);
  if (!/^(0|[1-9][0-9]*)$/.test(digits)) return undefined;
  const partition = Number(digits);
  return Number.isSafeInteger(partition) ? { topic: name.slice(0, slash), partition } : undefined;
}
