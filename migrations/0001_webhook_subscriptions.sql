CREATE TABLE `webhook_subscriptions` (
	`name` text PRIMARY KEY NOT NULL,
	`topic` text NOT NULL,
	`filter` text,
	`ordering` text NOT NULL,
	`max_retries` integer NOT NULL,
	`url` text NOT NULL,
	`secret` text NOT NULL,
	`created_at` integer NOT NULL
);
