export { AuthError, isAuthError, type AuthErrorCode } from './errors.js';
export { hashPassword, verifyPassword, dummyVerifyPassword, prepareDummyHash } from './passwords.js';
export {
  TokenService,
  generateSigningKey,
  type SigningKey,
  type SignedToken,
  type VerifiedToken,
  type TokenServiceOptions,
  type JWK,
} from './tokens.js';
