ALTER TABLE `api_keys` ADD `rotated_at` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `previous_secret_hash` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `previous_secret_until` integer;--> statement-breakpoint
CREATE INDEX `api_keys_created_by` ON `api_keys` (`created_by`);--> statement-breakpoint
-- Keys minted by a key (created_by `key:<id>`) may not outlive it (docs/security.md): keys that
-- existed before this rule take the earliest expiry and the first revocation along their chain
-- of creators, so a key revoked or expiring before the upgrade takes what it minted with it.
WITH RECURSIVE lineage(id, expires_at, revoked_at, revoked_by) AS (
	SELECT id, expires_at, revoked_at, revoked_by FROM api_keys WHERE created_by NOT LIKE 'key:%'
	UNION ALL
	SELECT k.id,
		CASE WHEN l.expires_at IS NULL THEN k.expires_at WHEN k.expires_at IS NULL THEN l.expires_at ELSE min(k.expires_at, l.expires_at) END,
		coalesce(k.revoked_at, l.revoked_at),
		CASE WHEN k.revoked_at IS NULL THEN l.revoked_by ELSE k.revoked_by END
	FROM api_keys k JOIN lineage l ON k.created_by = 'key:' || l.id
)
UPDATE api_keys SET
	expires_at = (SELECT expires_at FROM lineage WHERE lineage.id = api_keys.id),
	revoked_at = (SELECT revoked_at FROM lineage WHERE lineage.id = api_keys.id),
	revoked_by = (SELECT revoked_by FROM lineage WHERE lineage.id = api_keys.id)
WHERE created_by LIKE 'key:%' AND id IN (SELECT id FROM lineage);
