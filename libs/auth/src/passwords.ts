import { hash, verify, type Algorithm } from '@node-rs/argon2';
import { randomBytes } from 'node:crypto';

/** `Algorithm.Argon2id` (an ambient const enum, which isolatedModules cannot reference). */
const ARGON2ID = 2 as Algorithm;

/** OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane. */
const OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Hash a password with argon2id; the result is a PHC string (`$argon2id$v=19$...`). */
export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS);
}

/** True when `password` matches the PHC `encoded` hash. A malformed hash is a mismatch, never a throw. */
export async function verifyPassword(encoded: string, password: string): Promise<boolean> {
  try {
    return await verify(encoded, password);
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;

/** Compute the dummy hash ahead of the first login, so that first answer takes no longer than later ones. */
export async function prepareDummyHash(): Promise<void> {
  dummy ??= hashPassword(randomBytes(24).toString('base64'));
  await dummy;
}

/**
 * Spend the same time as a real verification, for a user that does not exist, so that response times do
 * not tell an attacker which user names exist. Always resolves false.
 */
export async function dummyVerifyPassword(password: string): Promise<false> {
  dummy ??= hashPassword(randomBytes(24).toString('base64'));
  await verifyPassword(await dummy, password);
  return false;
}
