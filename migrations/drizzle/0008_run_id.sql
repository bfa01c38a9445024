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

--> statement-breakpoint
-- A session's run never changes either: the guard of migrations 0005/0006 now lists run_id among the columns
-- fixed at the start.
CREATE OR REPLACE FUNCTION mssh_sessions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cutoff text := current_setting('mssh.audit_prune_before', true);
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'sessions rows cannot be truncated (retention: mssh-relay audit prune)' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'DELETE' THEN
    IF cutoff IS NOT NULL AND cutoff <> '' AND OLD.ended_at IS NOT NULL AND OLD.ended_at < cutoff::timestamptz
       AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
      RETURN OLD;
    END IF;
    RAISE EXCEPTION 'sessions rows cannot be deleted (retention: mssh-relay audit prune)' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.ended_at IS NOT NULL THEN
    RAISE EXCEPTION 'session % is closed: its row cannot be changed', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.id IS DISTINCT FROM OLD.id OR NEW.relay_id IS DISTINCT FROM OLD.relay_id OR NEW.user_name IS DISTINCT FROM OLD.user_name
     OR NEW.host IS DISTINCT FROM OLD.host OR NEW.source IS DISTINCT FROM OLD.source OR NEW.via IS DISTINCT FROM OLD.via
     OR NEW.started_at IS DISTINCT FROM OLD.started_at OR NEW.holding_relay_id IS DISTINCT FROM OLD.holding_relay_id
     OR NEW.run_id IS DISTINCT FROM OLD.run_id THEN
    RAISE EXCEPTION 'session %: only the byte counters and the end of an open session may change', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.bytes_up < OLD.bytes_up OR NEW.bytes_down < OLD.bytes_down THEN
    RAISE EXCEPTION 'session %: byte counters may only grow', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF (NEW.ended_at IS NULL) <> (NEW.end_reason IS NULL) OR NEW.ended_at < OLD.started_at THEN
    RAISE EXCEPTION 'session %: an end needs both a time (not before the start) and a reason', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
