#!/usr/bin/env node
// Bundles one app (run from the app's folder): its own code and the workspace libs (@mssh/*, TypeScript
// source) go into one ESM file (CommonJS with --cjs); every npm dependency stays external and is loaded
// from node_modules.
// Usage: node ../../scripts/build-app.mjs src/main.ts dist/main.js [--keep] [--cjs] [--split] [--inline=zod,commander]
// (--keep: do not empty dist/ first, for a second entry of the same app. --inline: pure-JS dependencies
// bundled in as well: loading zod 4 from node_modules costs ~75 ms of ESM resolution per start, ~35 ms
// bundled, which matters for the short-lived `mssh` CLI; see bench/README.md. --cjs: a CommonJS bundle,
// for a launcher that runs it with a V8 code cache, apps/client/bin/compile-cache.cjs; dynamic imports of
// external packages become require() there. --split (ESM only): code reached only through a dynamic
// import() goes into dist/chunks/, together with the npm packages it imports, so a command that does not
// need them does not load them: `mssh-relay agent enroll` loaded fastify, ssh2, pg, PGlite, x509 and
// prom-client, ~0.8 s of CPU, to send one request to the running relay's admin socket.)
import { build } from 'esbuild';
import { readFileSync, cpSync, existsSync, rmSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';

const args = process.argv.slice(2);
const keep = args.includes('--keep');
const cjs = args.includes('--cjs');
const split = args.includes('--split');
if (split && cjs) {
  console.error('build-app.mjs: --split is for ESM bundles only');
  process.exit(2);
}
const inline = new Set(
  args
    .filter((a) => a.startsWith('--inline='))
    .flatMap((a) => a.slice('--inline='.length).split(','))
    .filter(Boolean),
);
const [entry, outfile] = args.filter((a) => !a.startsWith('--'));
if (!entry || !outfile) {
  console.error('usage: build-app.mjs ENTRY OUTFILE [--keep]');
  process.exit(2);
}
if (!keep) rmSync('dist', { recursive: true, force: true });
const root = resolve(import.meta.dirname, '..');
const external = ['node:*'];
const seen = new Set();
function collect(pkgDir) {
  const pkg = JSON.parse(readFileSync(resolve(pkgDir, 'package.json'), 'utf8'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    if (dep.startsWith('@mssh/')) {
      if (seen.has(dep)) continue;
      seen.add(dep);
      collect(resolve(root, 'node_modules', dep));
    } else if (!inline.has(dep)) {
      external.push(dep, `${dep}/*`);
    }
  }
}
collect('.');
await build({
  entryPoints: [entry],
  ...(split
    ? {
        splitting: true,
        outdir: dirname(outfile),
        entryNames: basename(outfile, extname(outfile)),
        chunkNames: 'chunks/[name]-[hash]',
      }
    : { outfile }),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: cjs ? 'cjs' : 'esm',
  sourcemap: 'linked',
  external,
  logLevel: 'warning',
  ...(cjs
    ? { supported: { 'dynamic-import': false } }
    : {
        banner: {
          js: "import { createRequire as __mssh_cr } from 'node:module'; const require = __mssh_cr(import.meta.url);",
        },
      }),
});
// The relay applies drizzle migrations at start; ship the SQL next to the bundle.
if (seen.has('@mssh/migrations')) {
  const src = resolve(root, 'migrations/drizzle');
  if (existsSync(src)) cpSync(src, resolve('dist/drizzle'), { recursive: true });
}
