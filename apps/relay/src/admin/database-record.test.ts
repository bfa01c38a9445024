/**
 * The database record of a data dir: what is stored (no password), what counts as the same database, and
 * an unreadable record refused with its code.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readDatabaseRecord,
  requestedDatabase,
  sameDatabase,
  withPasswordPlaceholder,
  withoutSecrets,
  writeDatabaseRecord,
} from './database-record.js';

const pgUrl = (url: string) => requestedDatabase(url);

describe('database record', () => {
  it('drops the password and password-like parameters, keeps the rest', () => {
    expect(withoutSecrets('postgres://mssh:s3cret@db.example:6432/mssh?sslmode=require&password=x&sslpassword=y')).toBe(
      'postgres://mssh@db.example:6432/mssh?sslmode=require',
    );
    expect(withoutSecrets('postgres://mssh:p@ss@db.example/mssh')).toBe('postgres://mssh@db.example/mssh');
    expect(withoutSecrets('postgresql://mssh:pw@/mssh?host=/run/postgresql')).toBe(
      'postgresql://mssh@/mssh?host=/run/postgresql',
    );
    expect(withoutSecrets('not a url')).toBe('(unparsable database URL)');
    expect(withPasswordPlaceholder('postgres://mssh:s3cret@db.example/mssh?sslmode=require')).toBe(
      'postgres://mssh:PASSWORD@db.example/mssh?sslmode=require',
    );
    expect(withPasswordPlaceholder('postgres://db.example/mssh')).toBe('postgres://USER:PASSWORD@db.example/mssh');
  });

  it('the same database: scheme spelling, default port, host case, password and TLS settings do not matter', () => {
    const a = pgUrl('postgres://mssh:one@DB.example/mssh');
    expect(sameDatabase(a, pgUrl('postgresql://mssh:two@db.example:5432/mssh?sslmode=require'))).toBe(true);
    expect(sameDatabase(a, pgUrl('postgres://mssh@db.example:5433/mssh'))).toBe(false);
    expect(sameDatabase(a, pgUrl('postgres://other@db.example/mssh'))).toBe(false);
    expect(sameDatabase(a, pgUrl('postgres://mssh@db.example/mssh2'))).toBe(false);
    expect(sameDatabase(a, pgUrl('postgres://mssh@db2.example/mssh'))).toBe(false);
    expect(
      sameDatabase(pgUrl('postgres://mssh@/mssh?host=/run/postgresql'), pgUrl('postgres://mssh:pw@/mssh?host=/tmp')),
    ).toBe(false);
    expect(
      sameDatabase(
        pgUrl('postgres://mssh@/mssh?host=/tmp'),
        pgUrl('postgres://mssh:pw@/mssh?host=/tmp&sslmode=disable'),
      ),
    ).toBe(true);
    expect(sameDatabase(a, requestedDatabase(undefined))).toBe(false);
    expect(sameDatabase(requestedDatabase(undefined), requestedDatabase(''))).toBe(true);
  });

  it('is written 0600 without the password and read back; an unreadable one is refused with its code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mssh-dbrec-'));
    expect(readDatabaseRecord(dir)).toBeNull();
    writeDatabaseRecord(dir, pgUrl('postgres://mssh:s3cret@db.example:5432/mssh'));
    const path = join(dir, 'database.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8')).not.toContain('s3cret');
    expect(readDatabaseRecord(dir)).toEqual({ kind: 'postgres', url: 'postgres://mssh@db.example:5432/mssh' });
    writeDatabaseRecord(dir, requestedDatabase(undefined));
    expect(readDatabaseRecord(dir)).toEqual({ kind: 'pglite' });
    writeFileSync(path, '{"kind":"mysql"}');
    expect(() => readDatabaseRecord(dir)).toThrow(expect.objectContaining({ code: 'RLY_CLI_ERR_DATABASE_RECORD' }));
  });
});
