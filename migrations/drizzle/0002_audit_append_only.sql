-- The audit trail is append-only: UPDATE, DELETE and TRUNCATE on audit_events fail. The one way to
-- remove rows is retention (`mssh-relay audit prune --older-than 365d`), which sets
-- mssh.audit_prune_before for its own transaction only (set_config(..., true)) and may then delete
-- rows strictly older than that instant, and nothing else.
CREATE OR REPLACE FUNCTION mssh_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cutoff text := current_setting('mssh.audit_prune_before', true);
BEGIN
  IF TG_OP = 'DELETE' AND cutoff IS NOT NULL AND cutoff <> '' AND OLD.time < cutoff::timestamptz THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % refused (retention: mssh-relay audit prune --older-than AGE)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
--> statement-breakpoint
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events FOR EACH ROW EXECUTE FUNCTION mssh_audit_append_only();
--> statement-breakpoint
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION mssh_audit_append_only();
--> statement-breakpoint
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION mssh_audit_append_only();
--> statement-breakpoint
-- One row per session: start, end, duration and bytes each way (active = still open).
CREATE VIEW audit_sessions AS
SELECT id AS session_id, relay_id, user_name, host, source, via, started_at, ended_at,
       COALESCE(ended_at, now()) - started_at AS duration,
       EXTRACT(EPOCH FROM COALESCE(ended_at, now()) - started_at)::double precision AS duration_s,
       bytes_up, bytes_down, end_reason, ended_at IS NULL AS active, progress_at
FROM sessions;
--> statement-breakpoint
-- Failed logins per source address and day, with the user names tried.
CREATE VIEW audit_failed_logins AS
SELECT source, date_trunc('day', time) AS day, count(*) AS failures, min(time) AS first_at, max(time) AS last_at,
       array_agg(DISTINCT actor) AS users
FROM audit_events
WHERE type = 'user.login' AND code = 'USR001W'
GROUP BY source, date_trunc('day', time);
