CREATE TABLE `projection_state` (
	`projection` text PRIMARY KEY NOT NULL,
	`state` text NOT NULL,
	`replay_id` text,
	`started_at` integer NOT NULL,
	`finished_at` integer
);
--> statement-breakpoint
CREATE TABLE `replay_jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`topic` text NOT NULL,
	`subscription` text NOT NULL,
	`state` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`view` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `replay_jobs_created` ON `replay_jobs` (`created_at`);--> statement-breakpoint
ALTER TABLE `subscription_stats` ADD `replay_duplicates` integer DEFAULT 0 NOT NULL;