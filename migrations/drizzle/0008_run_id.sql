ALTER TABLE "audit_events" ADD COLUMN "run_id" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "run_id" text;--> statement-breakpoint
CREATE INDEX "audit_events_run_idx" ON "audit_events" USING btree ("run_id") WHERE run_id IS NOT NULL;--> statement-breakpoint
-- The run of `mssh exec` a session belongs to, as the last column of the one-row-per-session view.
CREATE OR REPLACE VIEW audit_sessions AS
SELECT id AS session_id, relay_id, user_name, host, source, via, started_at, ended_at,
       COALESCE(ended_at, now()) - started_at AS duration,
       EXTRACT(EPOCH FROM COALESCE(ended_at, now()) - started_at)::double precision AS duration_s,
       bytes_up, bytes_down, end_reason, ended_at IS NULL AS active, progress_at, run_id
FROM sessions;
