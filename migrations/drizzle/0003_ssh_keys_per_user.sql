ALTER TABLE "ssh_keys" DROP CONSTRAINT "ssh_keys_fingerprint_unique";--> statement-breakpoint
CREATE UNIQUE INDEX "ssh_keys_user_fingerprint_idx" ON "ssh_keys" USING btree ("user_name","fingerprint");