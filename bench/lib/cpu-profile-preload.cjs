// Preloaded into the relay and agents by `npm run bench -- --profile DIR` (NODE_OPTIONS=--require ...;
// Node 20 refuses --cpu-prof in NODE_OPTIONS). Profiles the whole process with the inspector and writes
// DIR/<program>-<pid>.cpuprofile when the process exits normally (SIGTERM -> graceful shutdown).
'use strict';
const inspector = require('node:inspector');
const { writeFileSync, mkdirSync } = require('node:fs');
const { join, basename } = require('node:path');

const dir = process.env.MSSH_BENCH_PROFILE_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.start');
  process.once('exit', () => {
    // An in-process inspector session answers synchronously, so this completes inside 'exit'.
    session.post('Profiler.stop', (err, res) => {
      if (err || !res) return;
      const name = basename(process.argv[1] || 'node').replace(/\.js$/, '');
      const sub = process.argv[2] || '';
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(
          join(dir, `${name}${sub ? `-${sub}` : ''}-${process.pid}.cpuprofile`),
          JSON.stringify(res.profile),
        );
      } catch {
        /* nowhere to report it */
      }
    });
  });
}
