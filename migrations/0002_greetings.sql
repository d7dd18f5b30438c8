CREATE TABLE `greetings` (
	`subject` text PRIMARY KEY NOT NULL,
	`greetings` integer NOT NULL,
	`last_message` text NOT NULL,
	`last_sequence` integer NOT NULL
);
