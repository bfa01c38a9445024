#!/usr/bin/env node
// Thin launcher: the program itself is bundled into ../dist by `npm run build`, and runs with a V8 code
// cache (./compile-cache.cjs) so that it is not compiled again at every start.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/main.cjs', import.meta.url));
if (!existsSync(main)) {
  console.error('mssh: not built yet. Run `npm run build` in the mssh checkout, then try again.');
  process.exit(1);
}
createRequire(import.meta.url)('./compile-cache.cjs').runCompiled(main);
