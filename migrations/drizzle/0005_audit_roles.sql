-- Tamper resistance of the audit trail against the relay's own database role (issue 16, item 2).
--
-- Before: any role with DELETE on audit_events could `SET LOCAL mssh.audit_prune_before = '9999-01-01'`
-- and delete history without an audit.pruned row, and `sessions` could be rewritten at will.
-- Now:
-- * audit_events: UPDATE and TRUNCATE are always refused; DELETE only inside mssh_audit_prune(), a
--   SECURITY DEFINER function owned by the migrating role (the tables' owner). The trigger lets a DELETE
--   through only when current_user is the table owner (true inside that function) AND the
--   transaction-local cut-off is set AND the row is older than it. The function refuses a cut-off newer
--   than the retention floor (audit_retention.min_age, default 1 day, changeable by the owner only) and
--   writes its own audit.pruned row in the same transaction. EXECUTE is revoked from PUBLIC: only roles the
--   operator grants it to can prune (docs/audit.md, "Database roles").
-- * sessions: a closed row (ended_at set) cannot be changed or deleted; an open row may only be closed,
--   have its byte counters grow and its progress time set; who/where/when never change. Rows leave only
--   through mssh_audit_prune (closed sessions that ended before the cut-off).
-- The owner itself can still drop these triggers; the point is that the relay need not run as the owner.
-- On embedded PGlite there is one superuser (owner of everything), so the function works as before.
CREATE TABLE IF NOT EXISTS audit_retention (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  min_age interval NOT NULL DEFAULT interval '1 day' CHECK (min_age >= interval '1 day')
);
--> statement-breakpoint
INSERT INTO audit_retention DEFAULT VALUES ON CONFLICT DO NOTHING;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION mssh_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cutoff text := current_setting('mssh.audit_prune_before', true);
BEGIN
  IF TG_OP = 'DELETE' AND cutoff IS NOT NULL AND cutoff <> '' AND OLD.time < cutoff::timestamptz
     AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % refused (retention: mssh-relay audit prune --older-than AGE, as a role granted mssh_audit_prune)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
--> statement-breakpoint
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
     OR NEW.started_at IS DISTINCT FROM OLD.started_at THEN
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
--> statement-breakpoint
CREATE TRIGGER sessions_guard_update BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION mssh_sessions_guard();
--> statement-breakpoint
CREATE TRIGGER sessions_guard_delete BEFORE DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION mssh_sessions_guard();
--> statement-breakpoint
CREATE TRIGGER sessions_guard_truncate BEFORE TRUNCATE ON sessions FOR EACH STATEMENT EXECUTE FUNCTION mssh_sessions_guard();
--> statement-breakpoint
-- Retention: delete audit events older than p_before, and closed sessions that ended before it, and write
-- audit.pruned, all in the caller's transaction. Refused (SQLSTATE 22023) when p_before is newer than
-- now() - audit_retention.min_age.
CREATE OR REPLACE FUNCTION mssh_audit_prune(p_before timestamptz, p_actor text, p_source text, p_relay_id text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  floor_age interval;
  deleted bigint;
  sessions_deleted bigint;
BEGIN
  SELECT min_age INTO floor_age FROM audit_retention;
  floor_age := COALESCE(floor_age, interval '1 day');
  IF p_before IS NULL OR p_before > now() - floor_age THEN
    RAISE EXCEPTION 'audit prune refused: the cut-off % is within the retention floor of % (audit_retention.min_age)', p_before, floor_age
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('mssh.audit_prune_before', to_json(p_before)#>>'{}', true);
  WITH d AS (DELETE FROM audit_events WHERE time < p_before RETURNING 1) SELECT count(*) INTO deleted FROM d;
  WITH d AS (DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < p_before RETURNING 1) SELECT count(*) INTO sessions_deleted FROM d;
  PERFORM set_config('mssh.audit_prune_before', '', true);
  INSERT INTO audit_events (time, type, code, relay_id, actor, host, source, session_id, details)
  VALUES (now(), 'audit.pruned', 'AUD001I', COALESCE(p_relay_id, 'unknown'), p_actor, NULL, p_source, NULL,
          jsonb_build_object('olderThan', to_json(p_before), 'deleted', deleted, 'sessionsDeleted', sessions_deleted, 'dbUser', session_user));
  RETURN deleted;
END
$$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION mssh_audit_prune(timestamptz, text, text, text) FROM PUBLIC;
