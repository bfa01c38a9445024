#!/usr/bin/env node
// Thin launcher: the program itself is bundled into ../dist by `npm run build`, and runs with a V8 code
// cache (./compile-cache.cjs) so that it is not compiled again at every start. The two commands OpenSSH
// starts for every connection (`mssh proxy`, `mssh known-hosts openssh`) run from the small lean bundle
// (src/lean-main.ts), which hands anything it does not handle to the full one.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const [cmd, sub] = process.argv.slice(2);
const lean = cmd === 'proxy' || (cmd === 'known-hosts' && sub === 'openssh');
const main = fileURLToPath(new URL(lean ? '../dist/lean.cjs' : '../dist/main.cjs', import.meta.url));
if (!existsSync(main)) {
  console.error('mssh: not built yet. Run `npm run build` in the mssh checkout, then try again.');
  process.exit(1);
}
createRequire(import.meta.url)('./compile-cache.cjs').runCompiled(main);
