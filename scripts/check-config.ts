// Loads eventline.config.ts the way the Worker does; an invalid config exits non-zero with the
// message listing every bad field. Run by `npm run build` and `npm start`.
import config from "../eventline.config";

const summary = config.topics.map((t) => `${t.name}(${t.partitions})`).join(", ");
console.log(`eventline.config.ts ok: ${config.topics.length} topics: ${summary}`);
