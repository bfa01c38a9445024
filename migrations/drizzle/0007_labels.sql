DROP INDEX "grants_subject_pattern_uq";--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "labels" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "facts" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "enroll_tokens" ADD COLUMN "labels" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "grants" ADD COLUMN "selector" text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "grants_subject_pattern_selector_uq" ON "grants" USING btree ("subject_kind","subject","pattern","selector");