import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { testBindings } from "./bindings";

await applyD1Migrations(env.DB, testBindings.TEST_MIGRATIONS);
