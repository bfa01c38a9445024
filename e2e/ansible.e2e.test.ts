/**
 * Issue 21 item 5: Ansible (ansible-core, as installed on the machine) drives several machines through the
 * ssh config `mssh config ssh` writes: one inventory of three machines (three agents in front of the shared
 * fixture sshd), `ansible -m ping` and a short playbook (shell, copy), with Ansible's default
 * ControlPersist and with ControlMaster off. No prompt, every OpenSSH connection audited once, and with
 * ControlPersist one connection per machine for the whole run.
 *
 *   ansible-playbook --ssh -F generated--> ssh --ProxyCommand mssh proxy--> relay --> agent node-N --> sshd
 *                                              UserKnownHostsFile written by that proxy (pinned keys)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import {
  adminAuditEvents,
  loginUser,
  startAgent,
  startRelay,
  stopAll,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

const HOSTS = ['node-1', 'node-2', 'node-3'];

describe('Ansible through mssh config ssh', () => {
  let relay: Relay;
  let admin: User;
  let dir: string;
  let cfg: string;

  /** An ansible.cfg for one variant; its own control path dir, temp dirs and home. */
  function ansibleEnv(variant: string, sshArgs: string, pipelining: boolean): NodeJS.ProcessEnv {
    const d = join(dir, variant);
    for (const sub of ['cp', 'home', 'local']) mkdirSync(join(d, sub), { recursive: true });
    writeFileSync(
      join(d, 'ansible.cfg'),
      [
        '[defaults]',
        `inventory = ${join(dir, 'inventory.ini')}`,
        'interpreter_python = /usr/bin/python3',
        'gathering = explicit',
        'forks = 4',
        'retry_files_enabled = False',
        `local_tmp = ${join(d, 'local')}`,
        `remote_tmp = ${join(d, 'remote')}`,
        '[ssh_connection]',
        `ssh_args = -F ${cfg} ${sshArgs}`,
        `control_path_dir = ${join(d, 'cp')}`,
        `pipelining = ${pipelining ? 'True' : 'False'}`,
        '',
      ].join('\n'),
    );
    return {
      ...admin.env,
      ANSIBLE_CONFIG: join(d, 'ansible.cfg'),
      ANSIBLE_HOME: join(d, 'home'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_FORCE_COLOR: '0',
    };
  }

  /** session.start rows per machine of the inventory, all credited to the admin. */
  async function startsPerHost(): Promise<Record<string, number>> {
    const events = await adminAuditEvents(admin, ['--limit', '10000']);
    const starts = events.filter((e) => e.type === 'session.start' && HOSTS.includes(e.host ?? ''));
    for (const e of starts) expect(e.actor).toBe('admin');
    const ids = starts.map((e) => e.sessionId);
    expect(new Set(ids).size).toBe(ids.length); // once each
    return Object.fromEntries(HOSTS.map((h) => [h, starts.filter((e) => e.host === h).length]));
  }

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await Promise.all(HOSTS.map((h) => startAgent(relay, h)));
    admin = await loginUser(relay);
    dir = mkdtempSync(join(fixtures().root, 'ansible-'));
    const block = await admin.mssh(['config', 'ssh']);
    expect(block.code, block.stderr).toBe(0);
    cfg = join(dir, 'ssh_config');
    writeFileSync(cfg, block.stdout);
    writeFileSync(
      join(dir, 'inventory.ini'),
      [
        '[fleet]',
        ...HOSTS.map((h) => `${h}.mssh`),
        '[fleet:vars]',
        `ansible_user=${fixtures().sshd.user}`,
        `ansible_ssh_private_key_file=${fixtures().sshd.clientKey}`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'play.yml'),
      [
        '- hosts: fleet',
        '  tasks:',
        '    - name: shell',
        '      ansible.builtin.shell: echo "shell on {{ inventory_hostname }}"',
        '      register: out',
        '    - name: copy',
        '      ansible.builtin.copy:',
        `        dest: "${dir}/copied-{{ inventory_hostname }}.txt"`,
        '        content: "copied to {{ inventory_hostname }}: {{ out.stdout }}\\n"',
        '',
      ].join('\n'),
    );
  }, 120_000);
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('with ControlPersist (Ansible default ssh_args plus the mssh login ControlPath): ping and a playbook on 3 of 3, one audited connection per machine', async () => {
    // As apps/client/README.md says: Ansible's ssh_args with the ControlPath of the mssh login.
    const id = /--login-id ([0-9a-f]{12}) /.exec(readFileSync(cfg, 'utf8'))![1];
    const env = ansibleEnv(
      'persist',
      `-C -o ControlMaster=auto -o ControlPersist=20s -o ControlPath=~/.ssh/mssh-cm-%C-${id}`,
      false,
    );
    const before = await startsPerHost();
    const ping = await runCommand('ansible', ['fleet', '-m', 'ping', '-o'], { env, timeoutMs: 60_000 });
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    for (const h of HOSTS) expect(ping.stdout).toMatch(new RegExp(`^${h}\\.mssh \\| SUCCESS => .*"ping": "pong"`, 'm'));
    const play = await runCommand('ansible-playbook', [join(dir, 'play.yml')], { env, timeoutMs: 60_000 });
    expect(play.code, play.stdout + play.stderr).toBe(0);
    expect(play.stdout).toMatch(/ok=2 +changed=2 +unreachable=0 +failed=0/);
    for (const h of HOSTS)
      expect(readFileSync(join(dir, `copied-${h}.mssh.txt`), 'utf8')).toBe(`copied to ${h}.mssh: shell on ${h}.mssh\n`);
    const after = await startsPerHost();
    // Every task of both runs went over the one master per machine (ControlPersist through the ProxyCommand).
    for (const h of HOSTS) expect(after[h]! - before[h]!, h).toBe(1);
    for (const h of HOSTS)
      await runCommand(
        'ssh',
        ['-F', cfg, '-o', `ControlPath=~/.ssh/mssh-cm-%C-${id}`, '-O', 'exit', `${fixtures().sshd.user}@${h}.mssh`],
        {
          env,
          timeoutMs: 10_000,
        },
      );
  });

  it('with ControlMaster off (pipelining): ping on 3 of 3, its one OpenSSH connection per machine audited once', async () => {
    const env = ansibleEnv('nomux', '-o ControlMaster=no', true);
    const before = await startsPerHost();
    const ping = await runCommand('ansible', ['fleet', '-m', 'ping', '-o'], { env, timeoutMs: 60_000 });
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    for (const h of HOSTS) expect(ping.stdout).toMatch(new RegExp(`^${h}\\.mssh \\| SUCCESS => .*"ping": "pong"`, 'm'));
    expect(ping.stderr).not.toMatch(/yes\/no|password/i);
    const after = await startsPerHost();
    // Without sharing, each OpenSSH connection is a session of its own; with pipelining the ping is one.
    for (const h of HOSTS) expect(after[h]! - before[h]!, h).toBe(1);
  });
});
