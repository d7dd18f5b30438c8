CREATE TABLE `metrics_snapshots` (
	`slot` integer NOT NULL,
	`kind` text NOT NULL,
	`name` text NOT NULL,
	`at` integer NOT NULL,
	`body` text NOT NULL,
	PRIMARY KEY(`kind`, `name`, `slot`)
);
--> statement-breakpoint
CREATE INDEX `metrics_snapshots_slot` ON `metrics_snapshots` (`slot`);