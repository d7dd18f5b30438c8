ALTER TABLE `webhook_subscriptions` ADD `previous_secret` text;--> statement-breakpoint
ALTER TABLE `webhook_subscriptions` ADD `previous_secret_expires_at` integer;--> statement-breakpoint
-- Delivery errors used to name a webhook by its full URL, which may hold a token: rows written
-- before that was fixed get the URL replaced by its origin (scheme://host[:port]/…), as new rows
-- have it. Rows of subscriptions deleted since are beyond reach (their URLs are gone).
CREATE TABLE `webhook_url_redactions` AS
SELECT `name`, `url`, `scheme` || '://' || lower(substr(`authority`, instr(`authority`, '@') + 1)) || '/…' AS `redacted`
FROM (
  SELECT `name`, `url`, `scheme`, substr(`rest`, 1, min(
    coalesce(nullif(instr(`rest`, '/'), 0), length(`rest`) + 1),
    coalesce(nullif(instr(`rest`, '?'), 0), length(`rest`) + 1),
    coalesce(nullif(instr(`rest`, '#'), 0), length(`rest`) + 1)) - 1) AS `authority`
  FROM (
    SELECT `name`, `url`, lower(substr(`url`, 1, instr(`url`, '://') - 1)) AS `scheme`, substr(`url`, instr(`url`, '://') + 3) AS `rest`
    FROM `webhook_subscriptions` WHERE instr(`url`, '://') > 0
  )
);--> statement-breakpoint
UPDATE `delivery_attempts` SET `error` = replace(`error`, w.`url`, w.`redacted`)
FROM `webhook_url_redactions` AS w
WHERE `delivery_attempts`.`subscription` = w.`name` AND instr(`delivery_attempts`.`error`, w.`url`) > 0;--> statement-breakpoint
UPDATE `delivery_failures` SET `last_error` = replace(`last_error`, w.`url`, w.`redacted`)
FROM `webhook_url_redactions` AS w
WHERE `delivery_failures`.`subscription` = w.`name` AND instr(`delivery_failures`.`last_error`, w.`url`) > 0;--> statement-breakpoint
UPDATE `dead_letters` SET `error` = replace(`error`, w.`url`, w.`redacted`)
FROM `webhook_url_redactions` AS w
WHERE `dead_letters`.`subscription` = w.`name` AND instr(`dead_letters`.`error`, w.`url`) > 0;--> statement-breakpoint
DROP TABLE `webhook_url_redactions`;
