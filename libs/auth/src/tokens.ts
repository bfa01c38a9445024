import { randomUUID } from 'node:crypto';
import {
  SignJWT,
  jwtVerify,
  generateKeyPair,
  exportJWK,
  importJWK,
  calculateJwkThumbprint,
  errors as joseErrors,
  type JWK,
  type CryptoKey,
  type JWTPayload,
  type JWSHeaderParameters,
} from 'jose';
import { JWT_AUDIENCE, JWT_DEFAULT_TTL_SECONDS, JWT_ISSUER } from '@mssh/protocol';
import { AuthError } from './errors.js';

export type { JWK };

const ALG = 'EdDSA';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A signing key as stored (the relay keeps these in its database). */
export interface SigningKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
  createdAt?: Date;
  /** A retired key no longer signs; it still verifies tokens issued before its retirement. */
  retiredAt?: Date | null;
}

/** A fresh Ed25519 signing key. The kid is the RFC 7638 thumbprint of the public key. */
export async function generateSigningKey(): Promise<{ kid: string; privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(ALG, { crv: 'Ed25519', extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const privateJwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateJwk: { ...privateJwk, kid, alg: ALG }, publicJwk: { ...publicJwk, kid, alg: ALG, use: 'sig' } };
}

export interface TokenServiceOptions {
  issuer?: string;
  audience?: string;
  defaultTtlSeconds?: number;
  /** Leeway for exp/nbf/iat between machines. */
  clockToleranceSeconds?: number;
  /**
   * Longest lifetime (exp - iat) a token may have; longer ones, and ones expiring later than this from
   * now, are refused. Default: defaultTtlSeconds.
   */
  maxTtlSeconds?: number;
  /** Injectable clock (tests). */
  now?: () => Date;
}

export interface SignedToken {
  token: string;
  jti: string;
  expiresAt: Date;
}

export interface VerifiedToken {
  /** The user's name when the token was issued (`sub`); the id is what identifies the user. */
  user: string;
  /** The user's immutable id (claim `uid`): a user deleted and created again under the same name is another user. */
  userId: string;
  /** The user's token generation when the token was issued (claim `gen`); the relay compares it with the current one. */
  generation: number;
  admin: boolean;
  jti: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

/** Tokens whose signature was checked, kept to skip the Ed25519 verify when the same token comes again. */
const VERIFIED_CACHE_SIZE = 1024;

interface VerifiedEntry {
  kid: string;
  result: VerifiedToken;
  nbf: number;
}

interface LoadedKey {
  kid: string;
  publicJwk: JWK;
  verifyKey: CryptoKey;
  signKey: CryptoKey | null;
}

/**
 * Issues and verifies the relay's access tokens: EdDSA (Ed25519) JWTs with iss, aud, sub (user name), uid
 * (the user's id), gen (the user's token generation), admin, iat, nbf, exp and a random jti (for revocation). The newest non-retired key signs; every key verifies
 * the tokens carrying its kid. Only EdDSA is accepted, so `alg: none` and HMAC confusion are refused.
 */
export class TokenService {
  private readonly issuer: string;
  private readonly audience: string;
  private readonly defaultTtl: number;
  private readonly tolerance: number;
  private readonly maxTtl: number;
  private readonly now: () => Date;
  /**
   * Token string -> its verified claims. A client sends the same token with every request, and the
   * signature check was ~10 % of the relay's CPU at hundreds of session starts per second. Only the
   * signature, issuer and audience are taken from here: exp and nbf are checked against the clock on
   * every call, the key must still be loaded, and revocation is the caller's (database) check as before.
   */
  private readonly verified = new Map<string, VerifiedEntry>();

  private constructor(
    private keys: Map<string, LoadedKey>,
    private signer: LoadedKey | null,
    opts: TokenServiceOptions,
  ) {
    this.issuer = opts.issuer ?? JWT_ISSUER;
    this.audience = opts.audience ?? JWT_AUDIENCE;
    this.defaultTtl = opts.defaultTtlSeconds ?? JWT_DEFAULT_TTL_SECONDS;
    this.tolerance = opts.clockToleranceSeconds ?? 30;
    this.maxTtl = opts.maxTtlSeconds ?? this.defaultTtl;
    this.now = opts.now ?? (() => new Date());
  }

  /** Import the keys. Throws when a key is malformed. A service with no usable signing key can only verify. */
  static async create(keys: SigningKey[], opts: TokenServiceOptions = {}): Promise<TokenService> {
    const { loaded, signer } = await TokenService.load(keys);
    return new TokenService(loaded, signer, opts);
  }

  /**
   * Replace the key set in place (key rotation while running): the newest non-retired key signs from now
   * on; tokens of every listed key keep verifying. Throws (and keeps the old set) when a key is malformed.
   */
  async setKeys(keys: SigningKey[]): Promise<void> {
    const { loaded, signer } = await TokenService.load(keys);
    this.keys = loaded;
    this.signer = signer;
    this.verified.clear();
  }

  private static async load(keys: SigningKey[]): Promise<{ loaded: Map<string, LoadedKey>; signer: LoadedKey | null }> {
    const loaded = new Map<string, LoadedKey>();
    let signer: { key: LoadedKey; created: number } | null = null;
    for (const [i, k] of keys.entries()) {
      const verifyKey = (await importJWK({ ...k.publicJwk, alg: ALG }, ALG)) as CryptoKey;
      const retired = k.retiredAt != null;
      const signKey = retired ? null : ((await importJWK({ ...k.privateJwk, alg: ALG }, ALG)) as CryptoKey);
      const entry: LoadedKey = { kid: k.kid, publicJwk: k.publicJwk, verifyKey, signKey };
      loaded.set(k.kid, entry);
      // Newest by createdAt; without dates, the last one listed.
      const created = k.createdAt?.getTime() ?? i;
      if (!retired && (signer === null || created >= signer.created)) signer = { key: entry, created };
    }
    return { loaded, signer: signer?.key ?? null };
  }

  /** Leeway for exp/nbf between machines, in seconds. */
  get clockToleranceSeconds(): number {
    return this.tolerance;
  }

  get signingKid(): string | null {
    return this.signer?.kid ?? null;
  }

  /** `userId` and `generation` bind the token to that user row and to its current token generation. */
  async sign(input: {
    user: string;
    userId: string;
    generation: number;
    admin: boolean;
    ttlSeconds?: number;
  }): Promise<SignedToken> {
    if (!this.signer?.signKey) throw new Error('no signing key: every key is retired');
    if (!UUID_RE.test(input.userId) || !Number.isSafeInteger(input.generation) || input.generation < 0) {
      throw new Error("a token needs the user's id (a UUID) and token generation (an integer >= 0)");
    }
    const nowS = Math.floor(this.now().getTime() / 1000);
    const exp = nowS + Math.min(input.ttlSeconds ?? this.defaultTtl, this.maxTtl);
    const jti = randomUUID();
    const token = await new SignJWT({ admin: input.admin, uid: input.userId.toLowerCase(), gen: input.generation })
      .setProtectedHeader({ alg: ALG, kid: this.signer.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(this.audience)
      .setSubject(input.user)
      .setIssuedAt(nowS)
      .setNotBefore(nowS)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(this.signer.signKey);
    return { token, jti, expiresAt: new Date(exp * 1000) };
  }

  /**
   * Verify a token. Throws AuthError AUTH_ERR_TOKEN_EXPIRED, AUTH_ERR_INVALID_TOKEN (also: issued in the
   * future beyond the leeway, or a lifetime beyond the maximum) or AUTH_ERR_TOKEN_OUTDATED (a genuine
   * token from before tokens named the user's id and generation).
   */
  async verify(token: string): Promise<VerifiedToken> {
    const cached = this.verified.get(token);
    if (cached && this.keys.has(cached.kid)) {
      // The same comparisons as jose's (whole seconds).
      const nowS = Math.floor(this.now().getTime() / 1000);
      if (nowS - this.tolerance >= cached.result.exp) {
        this.verified.delete(token);
        throw new AuthError('AUTH_ERR_TOKEN_EXPIRED');
      }
      if (cached.nbf > nowS + this.tolerance) throw new AuthError('AUTH_ERR_INVALID_TOKEN');
      return { ...cached.result };
    }
    let payload: JWTPayload;
    let kid: string | undefined;
    try {
      let header: JWSHeaderParameters;
      ({ payload, protectedHeader: header } = await jwtVerify(token, (h: JWSHeaderParameters) => this.keyFor(h), {
        algorithms: [ALG],
        issuer: this.issuer,
        audience: this.audience,
        clockTolerance: this.tolerance,
        currentDate: this.now(),
        requiredClaims: ['exp', 'iat', 'nbf', 'jti', 'sub'],
      }));
      kid = header.kid;
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired) throw new AuthError('AUTH_ERR_TOKEN_EXPIRED', undefined, { cause: e });
      throw new AuthError('AUTH_ERR_INVALID_TOKEN', undefined, { cause: e });
    }
    const { sub, jti, exp, admin, nbf, iat, uid, gen } = payload;
    if (
      typeof sub !== 'string' ||
      sub === '' ||
      typeof jti !== 'string' ||
      typeof exp !== 'number' ||
      typeof admin !== 'boolean' ||
      typeof iat !== 'number'
    ) {
      throw new AuthError('AUTH_ERR_INVALID_TOKEN');
    }
    const nowS = Math.floor(this.now().getTime() / 1000);
    if (iat > nowS + this.tolerance)
      throw new AuthError(
        'AUTH_ERR_INVALID_TOKEN',
        'token is issued in the future; check the clocks, then run `mssh login` again',
      );
    if (exp - iat > this.maxTtl || exp > nowS + this.maxTtl + this.tolerance) {
      throw new AuthError(
        'AUTH_ERR_INVALID_TOKEN',
        'token lives longer than this relay allows; run `mssh login` again',
      );
    }
    if (uid === undefined && gen === undefined) throw new AuthError('AUTH_ERR_TOKEN_OUTDATED');
    if (
      typeof uid !== 'string' ||
      !UUID_RE.test(uid) ||
      typeof gen !== 'number' ||
      !Number.isSafeInteger(gen) ||
      gen < 0
    ) {
      throw new AuthError('AUTH_ERR_INVALID_TOKEN');
    }
    const result: VerifiedToken = { user: sub, userId: uid.toLowerCase(), generation: gen, admin, jti, exp };
    if (kid !== undefined && typeof nbf === 'number') {
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { kid, result, nbf });
    }
    return { ...result };
  }

  /** The public keys, for GET /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return { keys: [...this.keys.values()].map((k) => ({ ...k.publicJwk, kid: k.kid, alg: ALG, use: 'sig' })) };
  }

  private keyFor(header: JWSHeaderParameters): CryptoKey {
    const k = header.kid === undefined ? undefined : this.keys.get(header.kid);
    if (!k) throw new joseErrors.JWKSNoMatchingKey();
    return k.verifyKey;
  }
}
