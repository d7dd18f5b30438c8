CREATE TABLE `checkpoints` (
	`subscription` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`sequence` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`subscription`, `topic`, `partition`)
);
--> statement-breakpoint
CREATE TABLE `circuit_state` (
	`subscription` text PRIMARY KEY NOT NULL,
	`state` text NOT NULL,
	`consecutive_failures` integer NOT NULL,
	`opened_at` integer,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `dead_letters` (
	`id` text PRIMARY KEY NOT NULL,
	`subscription` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`sequence` integer NOT NULL,
	`event_id` text,
	`body` text NOT NULL,
	`reason` text NOT NULL,
	`error` text NOT NULL,
	`attempts` integer NOT NULL,
	`first_failure_at` integer NOT NULL,
	`last_failure_at` integer NOT NULL,
	`dead_lettered_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `dead_letters_subscription` ON `dead_letters` (`subscription`,`dead_lettered_at`);--> statement-breakpoint
CREATE TABLE `delivery_failures` (
	`subscription` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`sequence` integer NOT NULL,
	`attempts` integer NOT NULL,
	`first_failure_at` integer NOT NULL,
	`last_failure_at` integer NOT NULL,
	`last_error` text NOT NULL,
	PRIMARY KEY(`subscription`, `topic`, `partition`, `sequence`)
);
--> statement-breakpoint
CREATE TABLE `event_type_activity` (
	`topic` text NOT NULL,
	`type` text NOT NULL,
	`events` integer NOT NULL,
	`last_event_id` text NOT NULL,
	`last_seen_at` integer NOT NULL,
	PRIMARY KEY(`topic`, `type`)
);
--> statement-breakpoint
CREATE TABLE `processed_events` (
	`subscription` text NOT NULL,
	`source` text NOT NULL,
	`event_id` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`sequence` integer NOT NULL,
	`prev` integer NOT NULL,
	`outcome` text DEFAULT 'handled' NOT NULL,
	`processed_at` integer NOT NULL,
	PRIMARY KEY(`subscription`, `source`, `event_id`)
);
--> statement-breakpoint
CREATE INDEX `processed_events_position` ON `processed_events` (`subscription`,`topic`,`partition`,`sequence`);--> statement-breakpoint
CREATE TABLE `subscription_stats` (
	`subscription` text PRIMARY KEY NOT NULL,
	`handled` integer DEFAULT 0 NOT NULL,
	`retried` integer DEFAULT 0 NOT NULL,
	`dead_lettered` integer DEFAULT 0 NOT NULL,
	`updated_at` integer NOT NULL
);
