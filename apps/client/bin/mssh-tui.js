#!/usr/bin/env node
// Thin launcher: the program itself is bundled into ../dist by `npm run build`.
import { existsSync } from 'node:fs';

const main = new URL('../dist/tui.js', import.meta.url);
if (!existsSync(main)) {
  console.error('mssh-tui: not built yet. Run `npm run build` in the mssh checkout, then try again.');
  process.exit(1);
}
await import(main.href);
