CREATE TABLE `processor_windows` (
	`processor` text NOT NULL,
	`key` text NOT NULL,
	`window_start` integer NOT NULL,
	`window_end` integer NOT NULL,
	`revision` integer NOT NULL,
	`final` integer NOT NULL,
	`data` text NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`processor`, `key`, `window_start`)
);
--> statement-breakpoint
CREATE INDEX `processor_windows_end` ON `processor_windows` (`processor`,`window_end`);--> statement-breakpoint
CREATE VIEW `revenue_per_minute` AS select "key" as "currency", json_extract("data", '$.windowStart') as "window_start", json_extract("data", '$.windowEnd') as "window_end", json_extract("data", '$.count') as "count", json_extract("data", '$.sum') as "sum", "final" from "processor_windows" where "processor_windows"."processor" = 'revenue-per-minute';