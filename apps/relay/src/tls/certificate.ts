/**
 * The relay's TLS certificate: the operator's (--tls-cert/--tls-key) or, by default, a self-signed one
 * created on first start in <data-dir>/tls. Clients and agents pin its SHA-256 fingerprint.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { certFingerprint, publicKeyPin } from '@mssh/protocol';
import { writeFileAtomic, writePrivateFile } from '@mssh/cli-kit';
import { cliFailure, codedCliError } from '../errors.js';

export interface RelayTls {
  key: string;
  cert: string;
  /** "SHA256:<base64>" of the (leaf) certificate's DER. */
  fingerprint: string;
  /** "sha256//<base64>" of the (leaf) certificate's public key (SPKI): what curl --pinnedpubkey takes. */
  publicKeyPin: string;
  certPath: string;
  keyPath: string;
  /** True when a self-signed certificate was created just now. */
  created: boolean;
  /** Names the certificate is valid for (DNS and IP SANs). */
  names: string[];
  /** SANs asked for (--tls-san) but missing from an existing self-signed certificate. */
  missingSans: string[];
}

export function tlsPaths(dataDir: string): { dir: string; cert: string; key: string } {
  const dir = join(dataDir, 'tls');
  return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

/** The default SANs plus the extra ones, deduplicated, in order. */
export function defaultSans(extra: string[] = []): string[] {
  return [...new Set(['localhost', '127.0.0.1', '::1', hostname(), ...extra].filter((n) => n !== ''))];
}

/** Load the operator's certificate, or the self-signed one in the data dir, creating it on first start. */
export async function loadOrCreateTls(opts: {
  dataDir: string;
  certFile?: string;
  keyFile?: string;
  sans?: string[];
}): Promise<RelayTls> {
  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile)
      throw cliFailure('--tls-cert and --tls-key go together', 'Give both, or neither for a self-signed certificate.');
    return loadFiles(opts.certFile, opts.keyFile, false, []);
  }
  const p = tlsPaths(opts.dataDir);
  const wanted = defaultSans(opts.sans);
  if (existsSync(p.cert) && existsSync(p.key)) {
    const tls = loadFiles(p.cert, p.key, false, []);
    const have = new Set(tls.names);
    return { ...tls, missingSans: wanted.filter((n) => !have.has(isIP(n) ? normalizeIp(n) : n)) };
  }
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  chmodSync(p.dir, 0o700);
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + 10 * 365 * 24 * 3600_000);
  const { generate } = await import('selfsigned'); // node-forge and the rest: only to make a certificate
  const pems = await generate([{ name: 'commonName', value: 'mssh-relay' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: wanted.map((n) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })),
      },
    ],
  });
  writePrivateFile(p.key, pems.private);
  writeFileAtomic(p.cert, pems.cert, 0o644);
  return loadFiles(p.cert, p.key, true, []);
}

/**
 * Fingerprint of the certificate the relay would use, without creating anything; null when the data
 * dir's self-signed certificate does not exist yet. A certificate that exists but cannot be read or
 * parsed (or an operator's --tls-cert that is missing) is an error (RLY_CLI_ERR_KEY_FILE), never "none yet".
 */
export function readFingerprint(opts: { dataDir: string; certFile?: string }): string | null {
  return readCertificateIds(opts)?.fingerprint ?? null;
}

/** The fingerprint and the public key pin (curl --pinnedpubkey) of the certificate; null as readFingerprint. */
export function readCertificateIds(opts: {
  dataDir: string;
  certFile?: string;
}): { fingerprint: string; publicKeyPin: string } | null {
  const path = opts.certFile ?? tlsPaths(opts.dataDir).cert;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !opts.certFile) return null;
    throw codedCliError(
      'RLY_CLI_ERR_KEY_FILE',
      `cannot read the TLS certificate ${path}: ${code ?? (e as Error).message}`,
      opts.certFile
        ? 'Check the path given to --tls-cert and its permissions.'
        : `Check its permissions; to make a new self-signed one, move ${tlsPaths(opts.dataDir).dir} away and start the relay (clients and agents must then re-pin).`,
      e,
    );
  }
  try {
    return certificateIds(new X509Certificate(pem));
  } catch (e) {
    throw codedCliError(
      'RLY_CLI_ERR_KEY_FILE',
      `${path} is not a PEM certificate: ${(e as Error).message}`,
      opts.certFile
        ? 'Give --tls-cert a PEM certificate (chain).'
        : `Restore it from a backup, or move ${tlsPaths(opts.dataDir).dir} away and start the relay to make a new one (clients and agents must then re-pin).`,
      e,
    );
  }
}

function loadFiles(certPath: string, keyPath: string, created: boolean, missingSans: string[]): RelayTls {
  let cert: string;
  let key: string;
  try {
    cert = readFileSync(certPath, 'utf8');
    key = readFileSync(keyPath, 'utf8');
  } catch (e) {
    throw codedCliError(
      'RLY_CLI_ERR_KEY_FILE',
      `cannot read the TLS certificate or key: ${(e as Error).message}`,
      'Check the paths given to --tls-cert/--tls-key and their permissions.',
      e,
    );
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
    createPrivateKey(key);
  } catch (e) {
    throw codedCliError(
      'RLY_CLI_ERR_KEY_FILE',
      `${certPath} or ${keyPath} is not a PEM certificate and private key: ${(e as Error).message}`,
      'Give a PEM certificate (chain) and its unencrypted PEM private key.',
      e,
    );
  }
  if (!x509.checkPrivateKey(createPrivateKey(key))) {
    throw cliFailure(
      `the private key in ${keyPath} does not belong to the certificate in ${certPath}`,
      'Give the key that matches the certificate.',
    );
  }
  const names = (x509.subjectAltName ?? '')
    .split(', ')
    .map((s) => (s.startsWith('IP Address:') ? normalizeIp(s.slice('IP Address:'.length)) : s.replace(/^DNS:/, '')))
    .filter((s) => s !== '');
  return { key, cert, ...certificateIds(x509), certPath, keyPath, created, names, missingSans };
}

function certificateIds(x509: X509Certificate): { fingerprint: string; publicKeyPin: string } {
  return {
    fingerprint: certFingerprint(x509.raw),
    publicKeyPin: publicKeyPin(x509.publicKey.export({ type: 'spki', format: 'der' })),
  };
}

/** Canonical text of an IP address ("0:0:0:0:0:0:0:1" and "::1" are the same). */
function normalizeIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip;
  }
}
