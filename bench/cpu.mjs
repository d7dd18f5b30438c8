// CPU accounting from /proc (Linux only; elsewhere every figure is null). Throughput on a shared
// 2-core machine moves with whatever else runs, so the bench measures two more things: the CPU
// workerd spends per event (the platform's own cost, much steadier than req/s) and the CPU that
// processes other than the bench used during a run (to spot, and re-run, disturbed runs).
import { readdirSync, readFileSync } from "node:fs";

function stat(pid) {
  try {
    // Fields after the parenthesised command name, which may itself contain spaces.
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Direct children of `ppid` (workerd under the Miniflare child); [] where /proc is missing. */
export function childPids(ppid) {
  let entries;
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e) && stat(e)?.[1] === String(ppid)).map(Number);
}

// USER_HZ is 100 on every Linux that Node supports.
const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of `pids`, or null if none could be read. */
export function cpuSeconds(pids) {
  let ticks = 0;
  let read = 0;
  for (const pid of pids) {
    const fields = stat(pid);
    if (fields === null) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
    read++;
  }
  return read === 0 ? null : ticks / TICKS_PER_SECOND;
}

/** CPU seconds the whole machine spent busy (all cores), from /proc/stat; null off Linux. */
export function machineBusySeconds() {
  try {
    const [, ...fields] = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}
