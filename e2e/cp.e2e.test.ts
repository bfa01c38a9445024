/**
 * Issue 21: `mssh cp` with one machine, through the real relay, agent and OpenSSH sshd (its sftp-server):
 * upload and download byte-exact, -r trees, several sources into a directory, -p, and each refusal with
 * its code. The sshd runs as the test user on this machine, so "remote" paths are local paths here too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { MiB, sha256File, writeRandomFile } from './fixtures/files.js';
import { waitFor } from './fixtures/net.js';
import { BIN, loginUser, run, startAgent, startRelay, stopAll, type Relay, type User } from './fixtures/stack.js';

afterAll(stopAll);

/** Every file under `dir` (relative path → sha256), directories as `path/`; symlinks are not followed. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        out[`${relative(dir, p)}/`] = 'dir';
        walk(p);
      } else if (st.isFile()) out[relative(dir, p)] = sha256File(p);
      else out[relative(dir, p)] = 'other';
    }
  };
  walk(dir);
  return out;
}

describe('mssh cp with one machine', () => {
  let relay: Relay;
  let user: User;
  let dir: string;
  let big: string;
  let bigSum: string;
  const cp = (args: string[], timeoutMs = 30_000) => {
    const f = fixtures();
    return user.mssh(['cp', '-i', f.sshd.clientKey, '-l', f.sshd.user, ...args], { timeoutMs });
  };

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'laptop');
    user = await loginUser(relay);
    dir = mkdtempSync(join(fixtures().root, 'cp-'));
    big = join(dir, 'big.bin');
    bigSum = writeRandomFile(big, 8 * MiB);
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('uploads and downloads an 8 MiB file byte-exact, without a temporary file left beside it', async () => {
    const up = join(dir, 'up');
    const down = join(dir, 'down');
    mkdirSync(up);
    mkdirSync(down);
    const t0 = Date.now();
    const r = await cp([big, `laptop:${up}/`]);
    const secs = (Date.now() - t0) / 1000;
    console.log(`[figure] mssh cp upload 8 MiB (incl. start-up): ${secs.toFixed(2)} s`);
    expect(r.stderr).toBe(''); // not a terminal: no progress bar
    expect(r.code).toBe(0);
    expect(sha256File(join(up, 'big.bin'))).toBe(bigSum);
    const d = await cp([`laptop:${up}/big.bin`, join(down, 'copy.bin')]);
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(sha256File(join(down, 'copy.bin'))).toBe(bigSum);
    expect(readdirSync(up)).toEqual(['big.bin']);
    expect(readdirSync(down)).toEqual(['copy.bin']);
    // Copying again replaces the file (rename over it).
    writeFileSync(join(down, 'copy.bin'), 'old');
    expect((await cp([`laptop:${up}/big.bin`, join(down, 'copy.bin')])).code).toBe(0);
    expect(sha256File(join(down, 'copy.bin'))).toBe(bigSum);
  });

  it('-r copies a tree both ways; a symlink inside is skipped with a warning, not followed', async () => {
    const src = join(dir, 'tree');
    mkdirSync(join(src, 'a/b'), { recursive: true });
    mkdirSync(join(src, 'empty'));
    writeFileSync(join(src, 'top.txt'), 'top\n');
    writeFileSync(join(src, 'a/one.txt'), 'one\n');
    writeRandomFile(join(src, 'a/b/two.bin'), 70_000);
    symlinkSync('/etc', join(src, 'a/out-of-tree'));
    const remoteDir = join(dir, 'remote-tree');
    const r = await cp(['-r', src, `laptop:${remoteDir}`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/skipped .*a\/out-of-tree \(a symlink or special file/);
    const want = tree(src);
    delete want['a/out-of-tree'];
    expect(tree(remoteDir)).toEqual(want);
    // Download into an existing directory: the tree lands under its own name.
    const back = join(dir, 'back');
    mkdirSync(back);
    const d = await cp(['-r', '-q', `laptop:${remoteDir}`, back]);
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(tree(join(back, 'remote-tree'))).toEqual(want);
  });

  it('copies several sources into a directory', async () => {
    const files = ['s1.txt', 's2.txt', 's3.txt'].map((n) => {
      const p = join(dir, n);
      writeFileSync(p, `${n}\n`);
      return p;
    });
    const into = join(dir, 'several');
    mkdirSync(into);
    const r = await cp([...files, `laptop:${into}`]);
    expect(r.code).toBe(0);
    expect(readdirSync(into).sort()).toEqual(['s1.txt', 's2.txt', 's3.txt']);
    expect(readFileSync(join(into, 's2.txt'), 'utf8')).toBe('s2.txt\n');
    const back = join(dir, 'several-back');
    mkdirSync(back);
    const d = await cp([`laptop:${into}/s1.txt`, `laptop:${into}/s3.txt`, back]);
    expect(d.code).toBe(0);
    expect(readdirSync(back).sort()).toEqual(['s1.txt', 's3.txt']);
  });

  it('-p keeps the mode and modification time; without it the mtime is new', async () => {
    const src = join(dir, 'keep.sh');
    writeFileSync(src, '#!/bin/sh\n');
    chmodSync(src, 0o741);
    const old = new Date('2020-02-03T04:05:06Z');
    utimesSync(src, old, old);
    const p = await cp(['-p', src, `laptop:${dir}/kept.sh`]);
    expect(p.code).toBe(0);
    const kept = statSync(join(dir, 'kept.sh'));
    expect(kept.mode & 0o7777).toBe(0o741);
    expect(Math.floor(kept.mtimeMs / 1000)).toBe(old.getTime() / 1000);
    const d = await cp(['-p', `laptop:${dir}/kept.sh`, join(dir, 'kept-back.sh')]);
    expect(d.code).toBe(0);
    const back = statSync(join(dir, 'kept-back.sh'));
    expect(back.mode & 0o7777).toBe(0o741);
    expect(Math.floor(back.mtimeMs / 1000)).toBe(old.getTime() / 1000);
    const n = await cp([src, `laptop:${dir}/fresh.sh`]);
    expect(n.code).toBe(0);
    const fresh = statSync(join(dir, 'fresh.sh'));
    expect(fresh.mode & 0o7777).toBe(0o741 & 0o755);
    expect(fresh.mtimeMs).toBeGreaterThan(old.getTime() + 1000);
  });

  it('refuses with a code: missing remote or local source, no -r, DEST not a directory, permission, remote-to-remote', async () => {
    writeFileSync(join(dir, 'empty.txt'), '');
    // Independent refusals, run at once (each is a full mssh run through the relay).
    const [missingRemote, missingLocal, noParent, noR, notDir, denied, deniedLocal, r2r, local] = await Promise.all([
      cp([`laptop:${dir}/nope.txt`, dir]),
      cp([join(dir, 'nope.txt'), `laptop:${dir}/`]),
      cp([big, `laptop:${dir}/no/such/dir/x.bin`]),
      cp([`laptop:${dir}/tree`, join(dir, 'x')]),
      cp([big, join(dir, 'tree/top.txt'), `laptop:${dir}/tree/top.txt`]),
      // Even root may not create files in sysfs (EACCES), on either side.
      cp([join(dir, 'empty.txt'), 'laptop:/sys/']),
      cp([`laptop:${dir}/tree/top.txt`, '/sys/']),
      cp(['laptop:/etc/hostname', 'laptop:/tmp/']),
      cp([big, join(dir, 'plain')]),
    ]);
    expect(missingRemote.code).toBe(1);
    expect(missingRemote.stderr).toMatch(/laptop:.*nope\.txt: no such file or directory \[CLI_ERR_CP_NO_SUCH_FILE\]/);
    expect(missingLocal.code).toBe(1);
    expect(missingLocal.stderr).toMatch(/\[CLI_ERR_CP_NO_SUCH_FILE\]/);
    expect(noParent.stderr).toMatch(/no such directory .*\[CLI_ERR_CP_NO_SUCH_FILE\]/);
    expect(noR.code).toBe(1);
    expect(noR.stderr).toMatch(/is a directory \(not a regular file\) \[CLI_ERR_CP_IS_A_DIRECTORY\]\n.*-r/);
    expect(notDir.code).toBe(1);
    expect(notDir.stderr).toMatch(/\[CLI_ERR_CP_NOT_A_DIRECTORY\]/);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/laptop:\/sys\/.*permission denied .*\[CLI_ERR_CP_PERMISSION_DENIED\]/);
    expect(deniedLocal.stderr).toMatch(/\[CLI_ERR_CP_PERMISSION_DENIED\]/);
    expect(r2r.code).toBe(1);
    expect(r2r.stderr).toMatch(/both sides are remote.*\[CLI_ERR_CP_REMOTE_TO_REMOTE\]/);
    expect(local.code).toBe(64);
    expect(local.stderr).toMatch(/neither side is remote \[CLI_ERR_USAGE\]/);
    // No refusal left a temporary file behind.
    expect(readdirSync(dir).filter((n) => n.endsWith('.part'))).toEqual([]);
  });

  it('Ctrl-C during a download exits 130 and leaves neither the file nor its temporary', async () => {
    const f = fixtures();
    const huge = join(dir, 'huge.bin');
    writeRandomFile(huge, 32 * MiB);
    const into = join(dir, 'interrupted');
    mkdirSync(into);
    const p = run(BIN.mssh, ['cp', '-i', f.sshd.clientKey, '-l', f.sshd.user, `laptop:${huge}`, into], {
      env: user.env,
    });
    await waitFor(() => readdirSync(into).some((n) => n.endsWith('.part')) || !p.running, 20_000, 'a .part file');
    p.child.kill('SIGINT');
    const code = await p.exited;
    expect(p.err).toMatch(/interrupted; the file being copied was removed \[CLI_ERR_INTERRUPTED\]/);
    expect(code).toBe(130);
    expect(readdirSync(into)).toEqual([]);
    expect(existsSync(join(into, 'huge.bin'))).toBe(false);
  });
});
