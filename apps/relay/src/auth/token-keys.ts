import { TokenService, type SigningKey } from '@mssh/auth';
import { JWT_DEFAULT_TTL_SECONDS } from '@mssh/protocol';
import type { SigningKeyRepository } from '../db/index.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';
import { AUDIT } from '../audit/codes.js';

/** Leeway on exp/nbf between machines (documented in apps/relay/README.md). */
export const CLOCK_TOLERANCE_SECONDS = 30;

/**
 * The keys worth loading: usable ones, and retired ones that may still have unexpired tokens out (a
 * retired key stopped signing at retiredAt, so its last token expires ttl later, plus the clock leeway).
 */
export function liveKeys(keys: SigningKey[], now: Date, ttlSeconds = JWT_DEFAULT_TTL_SECONDS): SigningKey[] {
  const horizon = now.getTime() - (ttlSeconds + CLOCK_TOLERANCE_SECONDS) * 1000;
  return keys.filter((k) => !k.retiredAt || k.retiredAt.getTime() >= horizon);
}

/** The relay's token service over the persisted signing keys, creating the first key on first start. */
export async function loadTokenService(
  keys: SigningKeyRepository,
  opts: { tokenTtlSeconds?: number } = {},
): Promise<{ tokens: TokenService; createdKey: boolean }> {
  const { keys: list, created } = await keys.loadOrCreate();
  const tokens = await TokenService.create(liveKeys(list, new Date(), opts.tokenTtlSeconds), {
    defaultTtlSeconds: opts.tokenTtlSeconds,
    clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS,
  });
  return { tokens, createdKey: created };
}

/** Re-read the keys into a running token service (another relay on the same database may have rotated). */
export async function reloadTokenKeys(keys: SigningKeyRepository, tokens: TokenService): Promise<void> {
  await tokens.setKeys(liveKeys(await keys.list(), new Date()));
}

export interface RotatedKey {
  kid: string;
  retired: string[];
}

/**
 * `mssh-relay keys rotate`: a new signing key, the others retired (still verifying until their tokens
 * expire). Updates the running token service when there is one; records key.rotated.
 */
export async function rotateSigningKey(deps: {
  keys: SigningKeyRepository;
  audit: RelayAuditSink;
  tokens?: TokenService;
  by: { actor: string; source: string };
}): Promise<RotatedKey> {
  const r = await deps.keys.rotate();
  if (deps.tokens) await deps.tokens.setKeys(liveKeys(r.keys, new Date()));
  deps.audit.emit({
    ...AUDIT.keyRotated,
    actor: deps.by.actor,
    source: deps.by.source,
    details: { kid: r.kid, retired: r.retired },
  });
  return { kid: r.kid, retired: r.retired };
}
