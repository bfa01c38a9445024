import { describe, expect, it } from 'vitest';
import { SignJWT, UnsecuredJWT, decodeJwt, decodeProtectedHeader, importJWK, base64url } from 'jose';
import { JWT_AUDIENCE, JWT_DEFAULT_TTL_SECONDS, JWT_ISSUER } from '@mssh/protocol';
import { TokenService, generateSigningKey, type SigningKey } from './tokens.js';
import { AuthError } from './errors.js';

const UID = '6f1c1f9e-3f7e-4c55-9a63-6c1a2b3c4d5e';

async function service(keys?: SigningKey[], now?: () => Date) {
  const k = keys ?? [await generateSigningKey()];
  return TokenService.create(k, { now });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AuthError);
    return (e as AuthError).code;
  }
  throw new Error('expected a rejection');
}

/**
 * The refusal's code and the code of the check that refused (jose's error, kept as `cause`): every bad
 * token is AUTH_ERR_INVALID_TOKEN on the wire, so only the cause says which guard stopped it.
 */
async function refusedBy(p: Promise<unknown>): Promise<[code: string, guard: string | undefined]> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AuthError);
    return [(e as AuthError).code, ((e as AuthError).cause as { code?: string } | undefined)?.code];
  }
  throw new Error('expected a rejection');
}

describe('TokenService', () => {
  it('round trip: sign then verify gives the user, admin flag, jti and expiry; claims are the contract', async () => {
    const s = await service();
    const t = await s.sign({ user: 'alice', userId: UID, generation: 0, admin: true });
    const v = await s.verify(t.token);
    expect(v).toEqual({
      user: 'alice',
      userId: UID,
      generation: 0,
      admin: true,
      jti: t.jti,
      exp: Math.floor(t.expiresAt.getTime() / 1000),
    });
    const claims = decodeJwt(t.token);
    expect(claims.iss).toBe(JWT_ISSUER);
    expect(claims.aud).toBe(JWT_AUDIENCE);
    expect(claims.exp! - claims.iat!).toBe(JWT_DEFAULT_TTL_SECONDS);
    expect(claims.nbf).toBe(claims.iat);
    expect(claims).toMatchObject({ sub: 'alice', uid: UID, gen: 0 });
    expect(decodeProtectedHeader(t.token)).toMatchObject({ alg: 'EdDSA', kid: s.signingKid });
    const other = await s.sign({ user: 'alice', userId: UID, generation: 0, admin: false, ttlSeconds: 60 });
    expect(other.jti).not.toBe(t.jti);
    expect((await s.verify(other.token)).admin).toBe(false);
  });

  it('an expired token is AUTH_ERR_TOKEN_EXPIRED (beyond the 30 s tolerance)', async () => {
    const keys = [await generateSigningKey()];
    const past = await service(keys, () => new Date(Date.now() - 3600_000));
    const t = await past.sign({ user: 'alice', userId: UID, generation: 0, admin: false, ttlSeconds: 60 });
    const s = await service(keys);
    expect(await codeOf(s.verify(t.token))).toBe('AUTH_ERR_TOKEN_EXPIRED');
    // Within the tolerance it still passes.
    const recent = await service(keys, () => new Date(Date.now() - 70_000));
    const r = await recent.sign({ user: 'alice', userId: UID, generation: 0, admin: false, ttlSeconds: 60 });
    expect((await s.verify(r.token)).user).toBe('alice');
  });

  it('a token from the future (nbf) is refused', async () => {
    const keys = [await generateSigningKey()];
    const future = await service(keys, () => new Date(Date.now() + 3600_000));
    const t = await future.sign({ user: 'alice', userId: UID, generation: 0, admin: false });
    expect(await codeOf((await service(keys)).verify(t.token))).toBe('AUTH_ERR_INVALID_TOKEN');
  });

  it('a token signed by another key is refused, even with a known kid', async () => {
    const s = await service();
    const stranger = await service();
    const t = await stranger.sign({ user: 'alice', userId: UID, generation: 0, admin: true });
    expect(await codeOf(s.verify(t.token))).toBe('AUTH_ERR_INVALID_TOKEN');
    const foreign = await generateSigningKey();
    const forged = await new SignJWT({ admin: true })
      .setProtectedHeader({ alg: 'EdDSA', kid: s.signingKid! })
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setSubject('alice')
      .setJti('x')
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime('1h')
      .sign(await importJWK(foreign.privateJwk, 'EdDSA'));
    expect(await codeOf(s.verify(forged))).toBe('AUTH_ERR_INVALID_TOKEN');
  });

  it('an `alg: none` token is refused by the algorithm pin', async () => {
    const s = await service();
    const none = new UnsecuredJWT({ admin: true })
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setSubject('alice')
      .setJti('x')
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime('1h')
      .encode();
    expect(await refusedBy(s.verify(none))).toEqual(['AUTH_ERR_INVALID_TOKEN', 'ERR_JOSE_ALG_NOT_ALLOWED']);
    // Same with the kid of a real key in the header.
    const [, payload] = none.split('.');
    const header = base64url.encode(JSON.stringify({ alg: 'none', kid: s.signingKid }));
    expect(await refusedBy(s.verify(`${header}.${payload}.`))).toEqual([
      'AUTH_ERR_INVALID_TOKEN',
      'ERR_JOSE_ALG_NOT_ALLOWED',
    ]);
  });

  it("the algorithm pin is the guard: a token the relay's own key signed under another algorithm name (alg Ed25519) is refused", async () => {
    // Without `algorithms: ['EdDSA']` jose would take this one: the signature is good and the key fits.
    const key = await generateSigningKey();
    const s = await service([key]);
    const other = await new SignJWT({ admin: false, uid: UID, gen: 0 })
      .setProtectedHeader({ alg: 'Ed25519', kid: key.kid })
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setSubject('alice')
      .setJti('x')
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime('1h')
      .sign(await importJWK({ ...key.privateJwk, alg: 'Ed25519' }, 'Ed25519'));
    expect(await refusedBy(s.verify(other))).toEqual(['AUTH_ERR_INVALID_TOKEN', 'ERR_JOSE_ALG_NOT_ALLOWED']);
  });

  it('a tampered payload is refused', async () => {
    const s = await service();
    const t = await s.sign({ user: 'alice', userId: UID, generation: 0, admin: false });
    const [h, p, sig] = t.token.split('.') as [string, string, string];
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p)));
    const tampered = base64url.encode(JSON.stringify({ ...claims, admin: true }));
    expect(await codeOf(s.verify(`${h}.${tampered}.${sig}`))).toBe('AUTH_ERR_INVALID_TOKEN');
  });

  it('a wrong audience or issuer is refused', async () => {
    const key = await generateSigningKey();
    const s = await service([key]);
    const mk = (iss: string, aud: string) =>
      new SignJWT({ admin: false, uid: UID, gen: 0 })
        .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
        .setIssuer(iss)
        .setAudience(aud)
        .setSubject('alice')
        .setJti('j')
        .setIssuedAt()
        .setNotBefore('0s')
        .setExpirationTime('1h');
    const priv = await importJWK(key.privateJwk, 'EdDSA');
    expect(await codeOf(s.verify(await mk(JWT_ISSUER, 'someone-else').sign(priv)))).toBe('AUTH_ERR_INVALID_TOKEN');
    expect(await codeOf(s.verify(await mk('evil', JWT_AUDIENCE).sign(priv)))).toBe('AUTH_ERR_INVALID_TOKEN');
    expect((await s.verify(await mk(JWT_ISSUER, JWT_AUDIENCE).sign(priv))).user).toBe('alice');
  });

  it('garbage is refused', async () => {
    const s = await service();
    for (const g of ['', 'x', 'a.b.c', 'eyJ.eyJ.', '...'])
      expect(await codeOf(s.verify(g))).toBe('AUTH_ERR_INVALID_TOKEN');
  });

  it('the newest non-retired key signs, every key verifies, jwks lists public keys only', async () => {
    const old = { ...(await generateSigningKey()), createdAt: new Date(1000) };
    const newer = { ...(await generateSigningKey()), createdAt: new Date(2000) };
    const retired = { ...(await generateSigningKey()), createdAt: new Date(3000), retiredAt: new Date(4000) };
    const olderService = await service([old]);
    const s = await service([retired, newer, old]);
    expect(s.signingKid).toBe(newer.kid);
    const fromOld = await olderService.sign({ user: 'bob', userId: UID, generation: 0, admin: false });
    expect((await s.verify(fromOld.token)).user).toBe('bob');
    const jwks = s.jwks();
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual([old.kid, newer.kid, retired.kid].sort());
    for (const k of jwks.keys) {
      expect(k).not.toHaveProperty('d');
      expect(k).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    }
  });

  it('setKeys (rotation): the new key signs at once, tokens of the retired key keep verifying until they expire', async () => {
    const old = { ...(await generateSigningKey()), createdAt: new Date(1000) };
    let now = Date.now();
    const s = await service([old], () => new Date(now));
    const before = await s.sign({ user: 'alice', userId: UID, generation: 0, admin: false, ttlSeconds: 600 });
    const fresh = { ...(await generateSigningKey()), createdAt: new Date(2000) };
    await s.setKeys([{ ...old, retiredAt: new Date(now) }, fresh]);
    expect(s.signingKid).toBe(fresh.kid);
    const after = await s.sign({ user: 'alice', userId: UID, generation: 0, admin: false });
    expect(decodeProtectedHeader(after.token).kid).toBe(fresh.kid);
    expect((await s.verify(before.token)).user).toBe('alice');
    expect(
      s
        .jwks()
        .keys.map((k) => k.kid)
        .sort(),
    ).toEqual([old.kid, fresh.kid].sort());
    now += 601_000 + 30_000;
    expect(await codeOf(s.verify(before.token))).toBe('AUTH_ERR_TOKEN_EXPIRED');
  });
  it('a token verified once is still checked on every call: expiry by the clock, a dropped key, a changed signature', async () => {
    const k = await generateSigningKey();
    let now = Date.now();
    const s = await service([k], () => new Date(now));
    const t = await s.sign({ user: 'alice', userId: UID, generation: 0, admin: true, ttlSeconds: 60 });
    const first = await s.verify(t.token);
    // Again (from the cache of verified tokens): the same answer, and a copy the caller may not spoil.
    first.user = 'mallory';
    expect(await s.verify(t.token)).toEqual({
      user: 'alice',
      userId: UID,
      generation: 0,
      admin: true,
      jti: t.jti,
      exp: Math.floor(t.expiresAt.getTime() / 1000),
    });
    // One character of the signature changed: a different string, verified in full, refused.
    const [h, p, sig] = t.token.split('.') as [string, string, string];
    const flipped = `${h}.${p}.${sig.slice(0, 10)}${sig[10] === 'A' ? 'B' : 'A'}${sig.slice(11)}`;
    expect(await codeOf(s.verify(flipped))).toBe('AUTH_ERR_INVALID_TOKEN');
    // Expiry is the clock's, not the cache's: 60 s + the 30 s tolerance later it is refused.
    now += 89_000;
    expect((await s.verify(t.token)).user).toBe('alice');
    now += 2_000;
    expect(await codeOf(s.verify(t.token))).toBe('AUTH_ERR_TOKEN_EXPIRED');
    // A key taken out of the set no longer verifies its tokens, cached or not.
    now = Date.now();
    const u = await s.sign({ user: 'bob', userId: UID, generation: 0, admin: false });
    expect((await s.verify(u.token)).user).toBe('bob');
    await s.setKeys([await generateSigningKey()]);
    expect(await codeOf(s.verify(u.token))).toBe('AUTH_ERR_INVALID_TOKEN');
  });

  // Issue 16 item 6: who a token is, and how long it may live.
  it('a genuine token without the user id and generation (issued before they existed) is AUTH_ERR_TOKEN_OUTDATED', async () => {
    const key = await generateSigningKey();
    const s = await service([key]);
    const old = await new SignJWT({ admin: true })
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setSubject('alice')
      .setJti('j-old')
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime('1h')
      .sign(await importJWK(key.privateJwk, 'EdDSA'));
    expect(await codeOf(s.verify(old))).toBe('AUTH_ERR_TOKEN_OUTDATED');
    // Half of the pair, or a malformed id or generation, is simply invalid.
    const priv = await importJWK(key.privateJwk, 'EdDSA');
    const signWith = (claims: Record<string, unknown>) =>
      new SignJWT({ admin: false, ...claims })
        .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
        .setIssuer(JWT_ISSUER)
        .setAudience(JWT_AUDIENCE)
        .setSubject('alice')
        .setJti('j')
        .setIssuedAt()
        .setNotBefore('0s')
        .setExpirationTime('1h')
        .sign(priv);
    for (const claims of [
      { uid: UID },
      { gen: 0 },
      { uid: 'alice', gen: 0 },
      { uid: "x' OR 1=1", gen: 0 },
      { uid: UID, gen: -1 },
      { uid: UID, gen: 1.5 },
      { uid: UID, gen: '0' },
    ]) {
      expect(await codeOf(s.verify(await signWith(claims))), JSON.stringify(claims)).toBe('AUTH_ERR_INVALID_TOKEN');
    }
    expect(await s.verify(await signWith({ uid: UID, gen: 7 }))).toMatchObject({ userId: UID, generation: 7 });
  });

  it('iat in the future beyond the leeway is refused, within it accepted', async () => {
    const key = await generateSigningKey();
    const s = await service([key]);
    const priv = await importJWK(key.privateJwk, 'EdDSA');
    const nowS = Math.floor(Date.now() / 1000);
    // nbf is now (so only iat is in the future): the iat check is ours, not jose's.
    const withIat = (iat: number) =>
      new SignJWT({ admin: false, uid: UID, gen: 0 })
        .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
        .setIssuer(JWT_ISSUER)
        .setAudience(JWT_AUDIENCE)
        .setSubject('alice')
        .setJti(`j-${iat}`)
        .setIssuedAt(iat)
        .setNotBefore(nowS)
        .setExpirationTime(nowS + 3600)
        .sign(priv);
    expect(await codeOf(s.verify(await withIat(nowS + 120)))).toBe('AUTH_ERR_INVALID_TOKEN');
    expect((await s.verify(await withIat(nowS + 20))).user).toBe('alice');
  });

  it("a lifetime beyond the maximum is refused, even when signed by the relay's key", async () => {
    const key = await generateSigningKey();
    const s = await TokenService.create([key], { maxTtlSeconds: 3600 });
    const priv = await importJWK(key.privateJwk, 'EdDSA');
    const nowS = Math.floor(Date.now() / 1000);
    const lasting = (seconds: number, iat = nowS) =>
      new SignJWT({ admin: false, uid: UID, gen: 0 })
        .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
        .setIssuer(JWT_ISSUER)
        .setAudience(JWT_AUDIENCE)
        .setSubject('alice')
        .setJti(`j-${seconds}-${iat}`)
        .setIssuedAt(iat)
        .setNotBefore(nowS)
        .setExpirationTime(iat + seconds)
        .sign(priv);
    expect(await codeOf(s.verify(await lasting(3601)))).toBe('AUTH_ERR_INVALID_TOKEN');
    expect(await codeOf(s.verify(await lasting(10 * 365 * 86400)))).toBe('AUTH_ERR_INVALID_TOKEN');
    expect((await s.verify(await lasting(3600))).user).toBe('alice');
    // sign() itself never issues more than the maximum.
    const t = await s.sign({ user: 'alice', userId: UID, generation: 0, admin: false, ttlSeconds: 99_999 });
    const c = decodeJwt(t.token);
    expect(c.exp! - c.iat!).toBe(3600);
  });
});
