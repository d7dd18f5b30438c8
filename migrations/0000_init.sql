CREATE TABLE `checkpoints` (
	`subscription` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`sequence` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`subscription`, `topic`, `partition`)
);
--> statement-breakpoint
CREATE TABLE `processed_events` (
	`subscription` text NOT NULL,
	`source` text NOT NULL,
	`event_id` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`sequence` integer NOT NULL,
	`processed_at` integer NOT NULL,
	PRIMARY KEY(`subscription`, `source`, `event_id`)
);
