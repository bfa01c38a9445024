#!/usr/bin/env node
// `npm start`: a relay and an agent for THIS machine on the embedded database (PGlite), a logged-in
// `mssh` config, and the commands to connect. State lives in ./.mssh-dev (MSSH_QUICKSTART_DIR to move it).
// Ctrl-C stops both programs; running it again reuses the same relay, agent and keys.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

const root = resolve(import.meta.dirname, '..');
const dir = resolve(process.env.MSSH_QUICKSTART_DIR ?? join(root, '.mssh-dev'));
const listen = process.env.MSSH_LISTEN ?? '127.0.0.1:8443';
const BIN = {
  relay: join(root, 'apps/relay/bin/mssh-relay.js'),
  agent: join(root, 'apps/agent/bin/mssh-agent.js'),
  mssh: join(root, 'apps/client/bin/mssh.js'),
  tui: join(root, 'apps/client/bin/mssh-tui.js'),
};
const children = [];

function die(what, fix) {
  console.error(`quickstart: ${what}`);
  if (fix) console.error(`  ${fix}`);
  for (const c of children) c.kill('SIGINT');
  process.exit(1);
}

function runSync(bin, args, opts = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', ...opts });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** Start a long-running program; its stderr goes to a log file; resolves when `ready` shows up. */
function start(name, bin, args, ready, env = process.env) {
  const log = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let seen = '';
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start within 60 s; see ${join(dir, `${name}.log`)}`)),
      60_000,
    );
    const onData = (d) => {
      log.write(d);
      seen += d.toString();
      const m = seen.match(ready);
      if (m) {
        clearTimeout(timer);
        resolveReady({ child, match: m, output: () => seen });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}):\n${seen.split('\n').slice(-8).join('\n')}`));
    });
  });
}

mkdirSync(dir, { recursive: true, mode: 0o700 });
chmodSync(dir, 0o700);

// 1. The relay (first start creates the admin user with this password).
const pwFile = join(dir, 'admin-password');
if (!existsSync(pwFile)) writeFileSync(pwFile, randomBytes(12).toString('base64url') + '\n', { mode: 0o600 });
const adminPassword = readFileSync(pwFile, 'utf8').trim();
const relayDir = join(dir, 'relay');
let relay;
try {
  relay = await start(
    'relay',
    BIN.relay,
    ['serve', '--listen', listen, '--data-dir', relayDir],
    /TLS certificate fingerprint: (SHA256:\S+)/,
    { ...process.env, MSSH_BOOTSTRAP_PASSWORD: adminPassword },
  );
} catch (e) {
  die(
    `the relay did not start: ${e.message}`,
    `Is ${listen} in use? Pick another address: MSSH_LISTEN=127.0.0.1:9443 npm start`,
  );
}
const fingerprint = relay.match[1];
const url = relay.output().match(/mssh-relay listening on (https:\/\/\S+)/)[1];

// 2. This machine's agent: enrolled once, then reused.
const name =
  hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63) || 'this-machine';
const agentDir = join(dir, 'agent');
if (!existsSync(join(agentDir, 'agent.json'))) {
  const t = runSync(BIN.relay, ['agent', 'enroll', name, '--data-dir', relayDir]);
  const token = t.out.match(/--token\s+(\S+)/)?.[1];
  if (t.code !== 0 || !token)
    die(
      `could not create an enrolment token for "${name}": ${(t.err || t.out).trim()}`,
      `Remove ${dir} to start afresh.`,
    );
  const e = runSync(BIN.agent, [
    'enroll',
    '--relay',
    url,
    '--token',
    token,
    '--name',
    name,
    '--relay-fingerprint',
    fingerprint,
    '--state-dir',
    agentDir,
    '--target',
    'auto',
  ]);
  if (e.code !== 0) die(`mssh-agent enroll failed: ${(e.err || e.out).trim()}`);
}

// 3. A key for this quick start, authorised on the agent's embedded SSH server.
const keyFile = join(dir, 'id_ed25519');
if (!existsSync(keyFile)) {
  const require = createRequire(import.meta.url);
  const { utils } = require('ssh2');
  const kp = utils.generateKeyPairSync('ed25519', { comment: `mssh-quickstart@${name}` });
  writeFileSync(keyFile, kp.private, { mode: 0o600 });
  writeFileSync(`${keyFile}.pub`, kp.public + '\n', { mode: 0o644 });
}
const auth = runSync(BIN.agent, ['authorize', 'add', `${keyFile}.pub`, '--state-dir', agentDir]);
if (auth.code !== 0) die(`could not authorise the quick-start key: ${(auth.err || auth.out).trim()}`);

let agent;
try {
  agent = await start('agent', BIN.agent, ['run', '--state-dir', agentDir], /connected to relay/);
} catch (e) {
  die(`the agent did not connect: ${e.message}`);
}
const embedded = /embedded/i.test(agent.output());

// 4. A logged-in mssh config for this quick start.
const clientDir = join(dir, 'client');
const login = runSync(
  BIN.mssh,
  ['login', '--relay', url, '--user', 'admin', '--password-stdin', '--relay-fingerprint', fingerprint],
  { input: `${adminPassword}\n`, env: { ...process.env, MSSH_CONFIG_DIR: clientDir } },
);
if (login.code !== 0) die(`mssh login failed: ${(login.err || login.out).trim()}`);

// 5. An OpenSSH config for this quick start: exactly what `mssh config ssh` prints (NAME.mssh through
// `mssh proxy`, host keys only from mssh: the pinned key, else the one the relay attests), so the
// OpenSSH command below never asks yes/no and refuses a changed key.
const sshConfig = join(dir, 'ssh_config');
const block = runSync(BIN.mssh, ['config', 'ssh'], { env: { ...process.env, MSSH_CONFIG_DIR: clientDir } });
if (block.code !== 0 || !/--known-hosts-dir/.test(block.out))
  die(`mssh config ssh failed: ${(block.err || block.out).trim()}`);
writeFileSync(sshConfig, block.out, { mode: 0o600 });

const user = userInfo().username;
console.log(`
mssh is running.
  relay   ${url}   (certificate ${fingerprint})
  agent   "${name}" is online, serving ${embedded ? 'its embedded SSH server (sessions run as ' + user + ')' : 'the SSH server on 127.0.0.1:22'}
  admin   user "admin", password in ${pwFile}
  logs    ${join(dir, 'relay.log')}, ${join(dir, 'agent.log')}

Connect from another terminal in ${root}:
  export MSSH_CONFIG_DIR=${clientDir}
  node apps/client/bin/mssh.js ls
  node apps/client/bin/mssh.js ssh -i ${keyFile} ${user}@${name}
  node apps/client/bin/mssh-tui.js -i ${keyFile}            # the full-screen picker
  ssh -F ${sshConfig} -i ${keyFile} ${user}@${name}.mssh   # your own OpenSSH (or once: mssh config ssh --install)
${embedded ? '' : `(The agent forwards to this machine's sshd: log in with a key or password that sshd accepts.)\n`}
Ctrl-C stops the relay and the agent.`);

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  // SIGINT: stop now (SIGTERM would make the relay drain, waiting for running sessions).
  for (const c of children) c.kill('SIGINT');
  setTimeout(() => process.exit(0), 5_000).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
for (const c of children)
  c.once('exit', (code) => {
    if (!stopping) {
      console.error(`quickstart: a program exited (${code}); see the logs above`);
      stop();
    }
  });
