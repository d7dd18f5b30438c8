import { convertV4MiniflareOptions } from "miniflare";

const o = convertV4MiniflareOptions({
  host: "127.0.0.1",
  port: 0,
  logRequests: false,
  resourcePersistencePath: "/tmp/mfp",
  workers: [
    {
      name: "platform",
      modules: true,
      scriptPath: "/tmp/wbtest/index.js",
      compatibilityDate: "2026-11-01",
      durableObjects: { PARTITION_LOG: { className: "PartitionLog", useSQLite: true } },
      d1Databases: ["DB"],
    },
    {
      name: "baseline",
      modules: true,
      scriptPath: "/tmp/wbtest/index.js",
      compatibilityDate: "2026-11-01",
      unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
      durableObjects: { BARE_LOG: { className: "BareLog", useSQLite: true } },
    },
  ],
});
console.log(JSON.stringify(o, (k, v) => (typeof v === "string" && v.length > 300 ? v.slice(0, 100) + "…" : v), 2));
