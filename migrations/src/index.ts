import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as schema from './schema/index.js';

export { schema };
export * from './schema/index.js';

/**
 * Folder with the drizzle-kit generated SQL migrations, for drizzle's migrator (pg and PGlite alike).
 * From source it is migrations/drizzle; inside a bundled app it is copied to dist/drizzle.
 */
export function migrationsFolder(): string {
  for (const rel of ['../drizzle', './drizzle']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${p}/meta/_journal.json`)) return p;
  }
  throw new Error('mssh: SQL migrations not found next to the program; reinstall or rebuild (npm run build)');
}
