CREATE TABLE "agent_presence" (
	"agent_id" uuid NOT NULL,
	"agent_name" text NOT NULL,
	"relay_id" text NOT NULL,
	"since" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_presence_agent_id_relay_id_pk" PRIMARY KEY("agent_id","relay_id")
);
--> statement-breakpoint
CREATE TABLE "relays" (
	"id" text PRIMARY KEY NOT NULL,
	"peer_url" text,
	"peer_fingerprint" text,
	"public_url" text,
	"version" text NOT NULL,
	"pid" integer,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_until" timestamp with time zone NOT NULL,
	"state" text DEFAULT 'serving' NOT NULL,
	"state_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "holding_relay_id" text;--> statement-breakpoint
ALTER TABLE "agent_presence" ADD CONSTRAINT "agent_presence_agent_id_agents_id_fk" FOREIGN KEY ("agent_id") REFERENCES "public"."agents"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_presence" ADD CONSTRAINT "agent_presence_relay_id_relays_id_fk" FOREIGN KEY ("relay_id") REFERENCES "public"."relays"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "agent_presence_name_idx" ON "agent_presence" USING btree ("agent_name");--> statement-breakpoint
ALTER TABLE "relays" ADD CONSTRAINT "relays_state_check" CHECK ("state" IN ('serving', 'draining', 'stopped', 'lost'));--> statement-breakpoint
-- The relay fleet (issue 19, docs/fleet.md). The holding relay of a session never changes either: the guard
-- of migration 0005 now lists holding_relay_id among the columns fixed at the start.
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
     OR NEW.started_at IS DISTINCT FROM OLD.started_at OR NEW.holding_relay_id IS DISTINCT FROM OLD.holding_relay_id THEN
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
