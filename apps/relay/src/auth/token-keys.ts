import { TokenService } from '@mssh/auth';
import type { SigningKeyRepository } from '../db/index.js';

/** The relay's token service over the persisted signing keys, creating the first key on first start. */
export async function loadTokenService(keys: SigningKeyRepository, opts: { tokenTtlSeconds?: number } = {}): Promise<{ tokens: TokenService; createdKey: boolean }> {
  const { keys: list, created } = await keys.loadOrCreate();
  const tokens = await TokenService.create(list, { defaultTtlSeconds: opts.tokenTtlSeconds });
  return { tokens, createdKey: created };
}
