CREATE TABLE `customer_spend` (
	`customer_id` text NOT NULL,
	`currency` text NOT NULL,
	`total_spent` integer NOT NULL,
	PRIMARY KEY(`customer_id`, `currency`)
);
--> statement-breakpoint
CREATE TABLE `customer_summaries` (
	`customer_id` text PRIMARY KEY NOT NULL,
	`order_count` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `customer_summary_orders` (
	`order_id` text PRIMARY KEY NOT NULL,
	`customer_id` text NOT NULL,
	`currency` text NOT NULL,
	`paid` integer NOT NULL,
	`status` text NOT NULL,
	`version` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `orders_view` (
	`order_id` text PRIMARY KEY NOT NULL,
	`customer_id` text NOT NULL,
	`status` text NOT NULL,
	`currency` text NOT NULL,
	`lines` text NOT NULL,
	`total` integer NOT NULL,
	`paid` integer NOT NULL,
	`version` integer NOT NULL,
	`partition` integer NOT NULL,
	`sequence` integer NOT NULL,
	`placed_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `orders_view_status` ON `orders_view` (`status`,`placed_at`,`order_id`);--> statement-breakpoint
CREATE INDEX `orders_view_customer` ON `orders_view` (`customer_id`,`placed_at`,`order_id`);--> statement-breakpoint
CREATE INDEX `orders_view_placed` ON `orders_view` (`placed_at`,`order_id`);