import { describe, expect, it } from 'vitest';
import { copyFile, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localSide, type Side } from './copy-sides.js';
import { checkSpace, planCopy, runCopy, targetMode, tempName, type CopyJob } from './copy-engine.js';

const code = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: { code?: string }) => e.code,
  );

/** A directory with one file `f` and an empty `to/`, and the job (and plan) copying f into to/. */
async function oneFileJob() {
  const d = await mkdtemp(join(tmpdir(), 'mssh-cp-'));
  await writeFile(join(d, 'f'), 'data');
  await mkdir(join(d, 'to'));
  const side = localSide();
  const job: CopyJob = {
    src: side,
    dst: side,
    sources: [join(d, 'f')],
    dest: join(d, 'to'),
    recursive: false,
    preserve: false,
  };
  return { d, job, plan: await planCopy(job) };
}

describe('copy engine (local to local, the same plan and run as over SFTP)', () => {
  it('plans targets like cp: into a directory, as a new name, trees with -r', async () => {
    const d = await mkdtemp(join(tmpdir(), 'mssh-cp-'));
    await mkdir(join(d, 'src/sub'), { recursive: true });
    await writeFile(join(d, 'src/a.txt'), 'a');
    await writeFile(join(d, 'src/sub/b.txt'), 'bb');
    await mkdir(join(d, 'out'));
    const side = localSide();
    const job = (sources: string[], dest: string, recursive = false): CopyJob => ({
      src: side,
      dst: side,
      sources,
      dest,
      recursive,
      preserve: false,
    });
    const plan = await planCopy(job([join(d, 'src')], join(d, 'out'), true));
    expect(plan.files).toBe(2);
    expect(plan.bytes).toBe(3);
    expect(plan.ops.map((o) => `${o.kind}:${o.dst.slice(d.length)}`)).toEqual([
      'dir:/out/src',
      'file:/out/src/a.txt',
      'dir:/out/src/sub',
      'file:/out/src/sub/b.txt',
    ]);
    await runCopy(job([join(d, 'src')], join(d, 'out'), true), plan, {
      transfer: async (s, tmp, _target, onBytes) => {
        await copyFile(s, tmp);
        onBytes(1);
      },
    });
    expect(await readFile(join(d, 'out/src/sub/b.txt'), 'utf8')).toBe('bb');
    expect(await readdir(join(d, 'out/src'))).toEqual(['a.txt', 'sub']);

    expect(await code(planCopy(job([join(d, 'src')], join(d, 'out'))))).toBe('CLI_ERR_CP_IS_A_DIRECTORY');
    expect(await code(planCopy(job([join(d, 'src/a.txt'), join(d, 'src/a.txt')], join(d, 'x'))))).toBe(
      'CLI_ERR_CP_NO_SUCH_FILE',
    );
    expect(await code(planCopy(job([join(d, 'src/a.txt')], join(d, 'nodir/'))))).toBe('CLI_ERR_CP_NO_SUCH_FILE');
    expect(await code(planCopy(job([join(d, 'src/a.txt')], `${join(d, 'src/a.txt')}/`)))).toBe(
      'CLI_ERR_CP_NOT_A_DIRECTORY',
    );
  });

  it('a failed transfer removes its temporary file and leaves nothing under the final name', async () => {
    const { d, job, plan } = await oneFileJob();
    const failed = runCopy(job, plan, {
      transfer: async (_s, tmp) => {
        await writeFile(tmp, 'da');
        throw Object.assign(new Error('boom'), { code: 'EIO' });
      },
    });
    expect(await code(failed)).toBe('CLI_ERR_CP_FAILED');
    expect(await readdir(join(d, 'to'))).toEqual([]);
  });

  it('an interrupted transfer is let stop before its temporary is removed, so a late write cannot re-create it', async () => {
    const { d, job, plan } = await oneFileJob();
    const ac = new AbortController();
    let lateWrite: Promise<void> = Promise.resolve();
    const interrupted = runCopy(job, plan, {
      signal: ac.signal,
      // Like fastGet: the abort is seen only after the remote answer, which then opens the local file 'w'.
      transfer: (_s, tmp, _target, _onBytes, signal) =>
        new Promise<void>((_resolve, reject) => {
          signal?.addEventListener('abort', () => {
            lateWrite = new Promise<void>((wrote) =>
              setTimeout(() => {
                void writeFile(tmp, 'late').then(() => {
                  wrote();
                  reject(new Error('channel closed'));
                }, reject);
              }, 50),
            );
          });
          setTimeout(() => ac.abort(), 10);
        }),
    });
    expect(await code(interrupted)).toBe('CLI_ERR_INTERRUPTED');
    await lateWrite;
    expect(await readdir(join(d, 'to'))).toEqual([]);
  });

  it('refuses before copying when the destination reports too little space; unknown space is not checked', async () => {
    const withFree = (free: number | null): Side => ({
      ...localSide(),
      show: (p) => `h:${p}`,
      stat: async () => ({ type: 'dir', size: 0, mode: 0o755, atime: 0, mtime: 0 }),
      freeBytes: async () => free,
    });
    const plan = { ops: [], files: 1, bytes: 2048, skipped: [] };
    expect(await code(checkSpace(withFree(1024), '/d', plan))).toBe('CLI_ERR_CP_NO_SPACE');
    expect(await code(checkSpace(withFree(4096), '/d', plan))).toBeUndefined();
    expect(await code(checkSpace(withFree(null), '/d', plan))).toBeUndefined();
  });

  it('modes and temporary names', () => {
    expect(targetMode(0o100777, false)).toBe(0o755);
    expect(targetMode(0o104755, true)).toBe(0o4755);
    expect(tempName('/a/b/notes.txt')).toMatch(/^\/a\/b\/\.notes\.txt\.mssh-[0-9a-f]{8}\.part$/);
    expect(Buffer.byteLength(tempName(`/a/${'é'.repeat(200)}`).slice(3))).toBeLessThan(255);
  });
});
