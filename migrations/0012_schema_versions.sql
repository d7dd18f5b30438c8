CREATE TABLE `schema_versions` (
	`topic` text NOT NULL,
	`type` text NOT NULL,
	`version` integer NOT NULL,
	`schema` text NOT NULL,
	`fingerprint` text NOT NULL,
	`compatibility` text NOT NULL,
	`created_by` text,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`topic`, `type`, `version`)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `schema_versions_fingerprint` ON `schema_versions` (`topic`,`type`,`fingerprint`);