CREATE TABLE `delivery_attempts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`subscription` text NOT NULL,
	`topic` text NOT NULL,
	`partition` integer NOT NULL,
	`sequence` integer NOT NULL,
	`attempt` integer NOT NULL,
	`outcome` text NOT NULL,
	`error` text,
	`at` integer NOT NULL,
	`sent_at` integer
);
--> statement-breakpoint
CREATE INDEX `delivery_attempts_event` ON `delivery_attempts` (`topic`,`partition`,`sequence`);--> statement-breakpoint
CREATE TABLE `latency_histograms` (
	`subscription` text NOT NULL,
	`metric` text NOT NULL,
	`le` text NOT NULL,
	`value` real NOT NULL,
	PRIMARY KEY(`subscription`, `metric`, `le`)
);
