/**
 * `mssh-tui`: the full-screen host picker. One row per machine, live refresh, fuzzy filter, and Enter
 * opens the SSH shell itself (embedded ssh2 client over the relay tunnel), with the whole terminal handed
 * to it and the picker back, as it was, when the shell ends.
 *
 *   picker (blessed) ──Enter──▶ runSsh over RelayClient.openTunnel(host) ──▶ relay ──▶ agent ──▶ sshd
 *        ▲                              (terminal handed over: raw mode, resize → setWindow)
 *        └──────────── shell exits: picker restored, one-line status ──┘
 */
import { Writable } from 'node:stream';
import { fingerprintBlob, sanitizeForTerminal, sanitizeTextBlock, type HostInfo } from '@mssh/protocol';
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import type { Logger } from 'pino';
import type { ClientConfig } from '../config/config.js';
import type { CredentialsStore } from '../config/credentials-store.js';
import { normalizeRelayUrl } from '../config/relay-url.js';
import { cliError, isCliError, type CliError } from '../errors.js';
import { createHostKeyCheck } from '../known-hosts/host-key-policy.js';
import { typeOfBlob, type KnownHostsFile } from '../known-hosts/known-hosts-file.js';
import { RelayClient } from '../relay-client/relay-client.js';
import type { ConnectRelayOptions, RelayConnection } from '../relay-client/relay-connection.js';
import { runSsh } from '../ssh/run-ssh.js';
import type { Prompter } from '@mssh/cli-kit';
import { LOGIN_USER_RE, type LoginUsers } from './login-users.js';
import { rankByName } from './fuzzy.js';
import { matchesPickerLabels, splitPickerFilter } from './label-filter.js';
import { formatRow, headerLine } from './rows.js';
import { TerminalHandoff } from './terminal-handoff.js';

export interface PickerDeps {
  config: ClientConfig;
  store: CredentialsStore;
  knownHosts: KnownHostsFile;
  users: LoginUsers;
  log: Logger;
  identityFiles: string[];
  connect(opts: ConnectRelayOptions): Promise<RelayConnection>;
  /** --relay URL (or MSSH_RELAY): the relay to use instead of the current one. */
  relayUrl: string | null;
  /** --host NAME: connect at once. */
  initialHost: string | null;
  /** --connect-timeout SECONDS: how long a session may take to finish its SSH handshake. Default 30 s. */
  handshakeTimeoutMs?: number;
  /** Refresh period. Default 1.5 s. */
  refreshMs?: number;
}

interface Field {
  label: string;
  value: string;
  secret: boolean;
}

interface InputModal {
  kind: 'input';
  title: string;
  info: string;
  fields: Field[];
  index: number;
  error: string;
  done(values: string[] | null): void;
}

type Mode = 'list' | 'busy' | 'session' | 'help' | 'warning' | 'input';

const HELP = [
  '{bold}mssh-tui{/bold}: pick a machine, press Enter, you are in.',
  '',
  '  type          filter the list (fuzzy, case-insensitive; matches highlighted); the best',
  '                match is selected: exact name, then prefix, then fewest gaps, then name;',
  '                words with = are labels: env=prod keeps the machines labelled so',
  '  Backspace     delete the last filter character; Esc clears the filter',
  '  Up/Down, j/k  move (j/k when no filter is typed); Home/End first/last; PageUp/PageDown',
  '  Enter         open a shell on the selected machine; exit it to come back',
  '  u, Tab        set the login user for the selected machine (remembered); while a filter is',
  '                typed letters go to the filter, so use Tab',
  '  r             refresh now (the list also refreshes every 1.5 s)',
  '  ?             this help',
  '  q, Ctrl-C     quit (q when no filter is typed)',
  '',
  'Columns: STATUS (online / offline / stale: unseen for 30 days), NAME, LABELS, LAST SEEN,',
  'MINE (sessions this mssh-tui opened to the machine), RTT (HTTP/2 ping to the relay),',
  'HOST KEY (pinned in known_hosts, else the one the relay attests).',
  '',
  'Press any key to close.',
].join('\n');

export class PickerApp {
  private readonly screen: Widgets.Screen;
  private readonly title: Widgets.BoxElement;
  private readonly banner: Widgets.BoxElement;
  private readonly header: Widgets.BoxElement;
  private readonly list: Widgets.ListElement;
  private readonly filterLine: Widgets.BoxElement;
  private readonly statusLine: Widgets.BoxElement;
  private readonly modalBox: Widgets.BoxElement;
  private readonly handoff: TerminalHandoff;

  private mode: Mode = 'list';
  private hosts: HostInfo[] = [];
  /** False until the relay's first list arrived: the picker says "loading", not "no machines". */
  private loaded = false;
  /** Set by a filter change: the next render selects the best match (the first row). */
  private selectBest = false;
  private visible: HostInfo[] = [];
  private filter = '';
  private selected: string | null = null;
  private rttMs: number | null = null;
  private status = '';
  private bannerText = '';
  private modal: InputModal | null = null;
  private relay: { client: RelayClient; user: string } | null = null;
  private connecting: Promise<void> | null = null;
  private refreshing = false;
  private needLogin = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly mine = new Map<string, number>();
  private quitResolve: ((code: number) => void) | null = null;
  private closed = false;
  private prompterInfo = '';

  constructor(private readonly deps: PickerDeps) {
    this.screen = blessed.screen({
      smartCSR: true,
      fullUnicode: true,
      title: 'mssh-tui',
      autoPadding: false,
      warnings: false,
    });
    this.title = blessed.box({
      parent: this.screen,
      top: 0,
      left: 0,
      width: '100%',
      height: 1,
      tags: true,
      style: { fg: 'black', bg: 'cyan' },
    });
    this.banner = blessed.box({
      parent: this.screen,
      top: 1,
      left: 0,
      width: '100%',
      height: 1,
      tags: true,
      style: { fg: 'white', bg: 'red' },
      hidden: true,
    });
    this.header = blessed.box({
      parent: this.screen,
      top: 2,
      left: 0,
      width: '100%',
      height: 1,
      tags: true,
      style: { bold: true },
    });
    this.list = blessed.list({
      parent: this.screen,
      top: 3,
      left: 0,
      width: '100%',
      height: '100%-5',
      tags: true,
      keys: false,
      mouse: false,
      style: { selected: { inverse: true } },
      items: [],
    });
    this.filterLine = blessed.box({ parent: this.screen, bottom: 1, left: 0, width: '100%', height: 1, tags: true });
    this.statusLine = blessed.box({
      parent: this.screen,
      bottom: 0,
      left: 0,
      width: '100%',
      height: 1,
      tags: true,
      style: { fg: 'black', bg: 'white' },
    });
    this.modalBox = blessed.box({
      parent: this.screen,
      top: 'center',
      left: 'center',
      width: '90%',
      height: 'shrink',
      tags: true,
      hidden: true,
      border: { type: 'line' },
      padding: { left: 1, right: 1 },
      style: { border: { fg: 'cyan' } },
    });
    this.handoff = new TerminalHandoff(this.screen);
    this.screen.on('keypress', (ch: string | undefined, key: Widgets.Events.IKeyEventArg) => this.onKey(ch, key));
    this.screen.on('resize', () => this.render());
  }

  /** Run until the user quits; resolves with the exit code. */
  run(): Promise<number> {
    const done = new Promise<number>((res) => (this.quitResolve = res));
    this.render();
    void this.start();
    return done;
  }

  private async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.deps.refreshMs ?? 1_500);
    const host = this.deps.initialHost;
    if (host) {
      if (!this.relay && this.needLogin) await this.waitForLogin();
      if (this.relay) await this.connectTo(host);
    }
  }

  private waitForLogin(): Promise<void> {
    return new Promise((res) => {
      const t = setInterval(() => {
        if (this.closed || (this.relay && this.mode === 'list')) {
          clearInterval(t);
          res();
        }
      }, 100);
    });
  }

  // ---------- relay ----------

  private relayUrl(): string | null {
    if (this.deps.relayUrl) return normalizeRelayUrl(this.deps.relayUrl);
    return this.deps.store.currentUrl();
  }

  private async ensureRelay(): Promise<RelayClient> {
    if (this.relay) {
      const s = this.relay.client.conn.session;
      if (!s.closed && !s.destroyed) return this.relay.client;
      this.relay = null;
    }
    const url = this.relayUrl();
    const entry = url ? this.deps.store.get(url) : null;
    if (!url || !entry?.token)
      throw cliError('CLI_ERR_NOT_LOGGED_IN', url ? `not logged in to ${url}` : 'not logged in to a relay', '');
    const expires = entry.expiresAt ? Date.parse(entry.expiresAt) : NaN;
    if (Number.isFinite(expires) && expires <= Date.now())
      throw cliError('CLI_ERR_TOKEN_EXPIRED', `your login to ${url} expired`, '');
    const conn = await this.deps.connect({
      url,
      trust: { pin: entry.fingerprint, explicit: false },
      keepaliveMs: 5_000,
      timeoutMs: 5_000,
      // The picker tries again every refresh: a relay that does not finish its TLS handshake within 5 s
      // either is shown as unreachable (the banner) rather than waited for 30 s with nothing said.
      handshakeTimeoutMs: 5_000,
    });
    if (conn.pinReplaced) this.deps.store.updatePin(url, conn.fingerprint);
    const client = new RelayClient(conn, {
      token: entry.token,
      user: entry.user,
      requestTimeoutMs: 5_000,
      tunnelTimeoutMs: 15_000,
    });
    this.relay = { client, user: entry.user ?? '?' };
    this.deps.log.info({ url }, 'connected to relay');
    return client;
  }

  private dropRelay(): void {
    const r = this.relay;
    this.relay = null;
    if (r) void r.client.close().catch(() => {});
  }

  private ping(client: RelayClient): Promise<number | null> {
    return new Promise((res) => {
      try {
        const ok = client.conn.session.ping((err, duration) => res(err ? null : Math.max(0, Math.round(duration))));
        if (!ok) res(null);
      } catch {
        res(null);
      }
    });
  }

  private async refresh(): Promise<void> {
    if (this.refreshing || this.closed || this.mode === 'session' || this.mode === 'input' || this.needLogin) return;
    this.refreshing = true;
    try {
      const client = await this.ensureRelay();
      this.hosts = await client.listHosts();
      this.loaded = true;
      this.rttMs = await this.ping(client);
      if (this.bannerText) this.status = 'Relay reachable again.';
      this.bannerText = '';
    } catch (e) {
      this.onRelayError(e);
    } finally {
      this.refreshing = false;
    }
    this.render();
  }

  private onRelayError(e: unknown): void {
    const err = isCliError(e) ? e : cliError('CLI_ERR_INTERNAL', (e as Error)?.message ?? String(e), '');
    this.deps.log.warn({ code: err.code, msg: err.message }, 'relay request failed');
    if (
      ['CLI_ERR_NOT_LOGGED_IN', 'CLI_ERR_TOKEN_EXPIRED', 'CLI_ERR_TOKEN_REJECTED', 'CLI_ERR_SESSION_ENDED'].includes(
        err.code ?? '',
      )
    ) {
      this.dropRelay();
      if (!this.needLogin) void this.loginForm(err.message);
      return;
    }
    this.dropRelay();
    this.rttMs = null;
    // The relay answered: it is the account that is shut out, not the relay that is gone.
    this.bannerText =
      err.code === 'CLI_ERR_ACCOUNT_DISABLED'
        ? ` ${sanitizeForTerminal(err.message)} [${err.code}]; ${err.hint}`
        : ` Relay unreachable, retrying every 1.5 s (r: now; list as last seen): ${sanitizeForTerminal(err.message)} [${err.code}]`;
  }

  private async loginForm(reason: string): Promise<void> {
    this.needLogin = true;
    const url = this.relayUrl() ?? '';
    const entry = url ? this.deps.store.get(url) : null;
    let info = `${reason}. Log in to continue.`;
    for (;;) {
      const values = await this.input('Log in to a relay', info, [
        { label: 'Relay URL', value: url, secret: false },
        { label: 'User', value: entry?.user ?? this.deps.config.localUser, secret: false },
        { label: 'Password', value: '', secret: true },
      ]);
      if (!values) {
        this.needLogin = false;
        this.bannerText = ' Not logged in. Press r to log in, q to quit.';
        this.pendingLoginRetry = true;
        this.render();
        return;
      }
      try {
        const target = normalizeRelayUrl(values[0]!);
        const stored = this.deps.store.get(target);
        this.setModalError('Logging in…');
        const conn = await this.deps.connect({
          url: target,
          trust: { pin: stored?.fingerprint ?? null, explicit: false },
          timeoutMs: 5_000,
        });
        try {
          const res = await new RelayClient(conn, { token: null, user: values[1] }).login(values[1]!, values[2]!);
          this.deps.store.saveLogin({
            url: target,
            fingerprint: conn.fingerprint,
            token: res.token,
            user: res.user,
            admin: res.admin,
            expiresAt: res.expiresAt,
          });
          this.deps.log.info({ url: target, user: res.user, firstUse: conn.firstUse }, 'logged in');
          this.status = `Logged in to ${target} as ${sanitizeForTerminal(res.user)}${conn.firstUse ? ` (relay certificate ${conn.fingerprint} trusted on first use)` : ''}.`;
          if (this.deps.relayUrl) this.deps.relayUrl = target;
        } finally {
          await conn.close();
        }
        this.needLogin = false;
        this.bannerText = '';
        await this.refresh();
        return;
      } catch (e) {
        info = isCliError(e) ? `${e.message} [${e.code}]` : String((e as Error)?.message ?? e);
      }
    }
  }

  private pendingLoginRetry = false;

  // ---------- sessions ----------

  private async connectTo(host: string): Promise<void> {
    if (this.connecting || this.closed) return;
    this.connecting = this.doConnect(host).finally(() => (this.connecting = null));
    await this.connecting;
  }

  private async doConnect(host: string): Promise<void> {
    const user = this.deps.users.get(host);
    this.mode = 'busy';
    this.status = `Connecting to ${user}@${host}…`;
    this.render();
    let presented: Buffer | null = null;
    let counted = false;
    const stderr = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (this.handoff.active) process.stdout.write(chunk.toString('utf8').replace(/\r?\n/g, '\r\n'));
        else this.deps.log.info({ host, text: chunk.toString('utf8').slice(0, 2000) }, 'ssh stderr');
        cb();
      },
    });
    try {
      const client = await this.ensureRelay();
      const attested = this.deps.knownHosts.lookup(host).length > 0 ? [] : (await client.getHost(host)).hostKeys;
      const check = createHostKeyCheck({ host, knownHosts: this.deps.knownHosts, attested });
      const tunnel = await client.openTunnel(host);
      this.deps.log.info({ host, user, sessionId: tunnel.sessionId }, 'tunnel open');
      const code = await runSsh({
        sock: tunnel.stream,
        handshakeTimeoutMs: this.deps.handshakeTimeoutMs,
        lostReason: () => client.endedByRelay(tunnel, host),
        host,
        user,
        hostKey: {
          algorithms: check.algorithms,
          verify: (blob) => {
            presented = blob;
            return check.verify(blob);
          },
        },
        auth: {
          agentSocket: this.deps.config.agentSocket,
          identityFiles: this.deps.identityFiles,
          prompter: this.prompter(),
        },
        command: null,
        pty: true,
        term: this.deps.config.term,
        env: this.deps.config.localeEnv,
        stdin: process.stdin,
        stdout: process.stdout,
        stderr,
        onSessionStart: () => {
          this.mine.set(host, (this.mine.get(host) ?? 0) + 1);
          counted = true;
          this.hideModal();
          this.mode = 'session';
          this.handoff.take();
        },
      });
      this.status = `Session with ${user}@${host} ended (exit ${code}).`;
      this.sessionEnded(host);
      counted = false;
      this.deps.log.info({ host, code }, 'session ended');
    } catch (e) {
      const err: CliError = isCliError(e) ? e : cliError('CLI_ERR_INTERNAL', (e as Error)?.message ?? String(e), '');
      this.deps.log.warn({ host, code: err.code, msg: err.message }, 'session failed');
      if (err.code === 'CLI_ERR_HOST_KEY_CHANGED' || err.code === 'CLI_ERR_HOST_KEY_NOT_ATTESTED') {
        this.restoreFromSession();
        this.showHostKeyWarning(host, err, presented);
        return;
      }
      this.status = `${user}@${host}: ${sanitizeForTerminal(err.message)} [${err.code}]`;
      if (counted) this.sessionEnded(host);
      if (
        [
          'CLI_ERR_NOT_LOGGED_IN',
          'CLI_ERR_TOKEN_EXPIRED',
          'CLI_ERR_TOKEN_REJECTED',
          'CLI_ERR_SESSION_ENDED',
          'CLI_ERR_RELAY_UNREACHABLE',
          'CLI_ERR_RELAY_CONNECTION_LOST',
        ].includes(err.code ?? '')
      ) {
        // Back to the picker first: the login form (or the banner) goes on top of it.
        this.restoreFromSession();
        this.onRelayError(err);
        this.render();
        return;
      }
    }
    this.restoreFromSession();
    this.render();
  }

  /** MINE counts the sessions of this mssh-tui that are open now. */
  private sessionEnded(host: string): void {
    const n = (this.mine.get(host) ?? 0) - 1;
    if (n > 0) this.mine.set(host, n);
    else this.mine.delete(host);
  }

  private restoreFromSession(): void {
    if (this.handoff.active) this.handoff.give();
    // runSsh pauses stdin when it ends, also when the session never started: blessed reads it again.
    else if (!this.closed) process.stdin.resume();
    if (this.mode === 'session' || this.mode === 'busy') this.mode = 'list';
    this.hideModal();
  }

  private showHostKeyWarning(host: string, err: CliError, presented: Buffer | null): void {
    const pinned = this.deps.knownHosts.lookup(host).map((k) => `${fingerprintBlob(k.blob)} (${k.type})`);
    const shown = presented ? `${fingerprintBlob(presented)} (${typeOfBlob(presented)})` : 'unknown';
    const changed = err.code === 'CLI_ERR_HOST_KEY_CHANGED';
    const lines = changed
      ? [
          `{red-fg}{bold}HOST KEY FOR ${blessed.escape(host)} HAS CHANGED: NOT CONNECTED{/bold}{/red-fg}`,
          '',
          `  Presented now:  ${shown}`,
          `  Pinned before:  ${pinned.join(', ') || '-'}`,
          '',
          `Someone may be intercepting the connection, or ${blessed.escape(host)}'s SSH keys were replaced.`,
          'Only if you know they were replaced, forget the old key and connect again:',
          '',
          `    mssh known-hosts forget ${blessed.escape(host)}`,
        ]
      : [
          `{red-fg}{bold}CANNOT VERIFY THE HOST KEY OF ${blessed.escape(host)}: NOT CONNECTED{/bold}{/red-fg}`,
          '',
          `  Presented now:  ${shown}`,
          '',
          blessed.escape(sanitizeForTerminal(err.message)),
          blessed.escape(sanitizeForTerminal(err.hint)),
        ];
    lines.push('', '{bold}[Esc/Enter] cancel{/bold}');
    this.mode = 'warning';
    this.modalBox.style.border = { fg: 'red' };
    this.modalBox.setContent(lines.join('\n'));
    this.modalBox.show();
    this.status = `Not connected to ${host}: host key ${changed ? 'changed' : 'not attested'} [${err.code}]`;
    this.render();
  }

  // ---------- prompts ----------

  private prompter(): Prompter {
    return {
      available: () => !this.closed,
      say: (text: string) => {
        this.prompterInfo = this.prompterInfo ? `${this.prompterInfo}\n${text}` : text;
      },
      ask: async (question: string, opts: { echo: boolean }) => {
        const info = this.prompterInfo;
        this.prompterInfo = '';
        const values = await this.input('Authentication', info, [
          { label: question.replace(/:\s*$/, ''), value: '', secret: !opts.echo },
        ]);
        if (!values) throw cliError('CLI_ERR_PROMPT_ABORTED', 'cancelled at the prompt', '');
        return values[0]!;
      },
    };
  }

  private input(title: string, info: string, fields: Field[]): Promise<string[] | null> {
    return new Promise((resolve) => {
      const previous = this.mode;
      this.modal = {
        kind: 'input',
        title,
        info,
        fields,
        index: 0,
        error: '',
        done: (values) => {
          this.modal = null;
          this.mode = previous === 'input' ? 'list' : previous;
          this.hideModal();
          this.render();
          resolve(values);
        },
      };
      this.mode = 'input';
      this.drawModal();
    });
  }

  private setModalError(text: string): void {
    if (this.modal) {
      this.modal.error = text;
      this.drawModal();
    }
  }

  private drawModal(): void {
    const m = this.modal;
    if (!m) return;
    const lines = [`{bold}${blessed.escape(m.title)}{/bold}`];
    if (m.info) lines.push('', blessed.escape(sanitizeTextBlock(m.info)));
    lines.push('');
    m.fields.forEach((f, i) => {
      const v = f.secret ? '*'.repeat(Math.min(f.value.length, 40)) : f.value;
      const cursor = i === m.index ? '{inverse} {/inverse}' : '';
      lines.push(`${i === m.index ? '>' : ' '} ${blessed.escape(f.label)}: ${blessed.escape(v)}${cursor}`);
    });
    if (m.error) lines.push('', `{yellow-fg}${blessed.escape(m.error)}{/yellow-fg}`);
    lines.push('', 'Enter: next/submit   Tab: next field   Esc/Ctrl-C: cancel');
    this.modalBox.style.border = { fg: 'cyan' };
    this.modalBox.setContent(lines.join('\n'));
    this.modalBox.show();
    this.render();
  }

  private hideModal(): void {
    this.modalBox.hide();
  }

  // ---------- keys ----------

  private onKey(ch: string | undefined, key: Widgets.Events.IKeyEventArg): void {
    if (this.closed || this.mode === 'session') return;
    const name = key?.full ?? key?.name ?? '';
    if (key?.name === 'return') return; // blessed sends 'enter' right after
    const printable =
      typeof ch === 'string' && ch.length === 1 && ch >= ' ' && ch !== '\x7f' && !key?.ctrl && !key?.meta;
    switch (this.mode) {
      case 'input':
        return this.onInputKey(ch, name, printable);
      case 'help':
        this.mode = 'list';
        this.hideModal();
        return this.render();
      case 'warning':
        if (name === 'escape' || name === 'enter' || name === 'C-c' || name === 'q') {
          this.mode = 'list';
          this.hideModal();
          this.render();
        }
        return;
      case 'busy':
        return;
      default:
        break;
    }
    if (name === 'C-c' || (name === 'q' && this.filter === '')) return void this.quit(0);
    if (name === 'up' || (name === 'k' && this.filter === '')) return this.move(-1);
    if (name === 'down' || (name === 'j' && this.filter === '')) return this.move(1);
    if (name === 'pageup') return this.move(-10);
    if (name === 'pagedown') return this.move(10);
    if (name === 'home') return this.move(-Infinity);
    if (name === 'end') return this.move(Infinity);
    // Tab: the login user, also while a filter is typed (then `u` is a filter letter: names may contain it).
    if (name === 'tab') return void this.askUser();
    if (name === 'enter') {
      const h = this.current();
      if (h) void this.connectTo(h.name);
      return;
    }
    if (name === 'escape') return this.setFilter('');
    if (name === 'backspace') return this.setFilter(Array.from(this.filter).slice(0, -1).join(''));
    if (this.filter === '') {
      if (name === 'r') {
        this.status = 'Refreshing…';
        if (this.pendingLoginRetry || (!this.relay && !this.relayUrl())) {
          this.pendingLoginRetry = false;
          void this.loginForm('Not logged in');
          return;
        }
        void this.refresh();
        return;
      }
      if (ch === '?') {
        this.mode = 'help';
        this.modalBox.style.border = { fg: 'cyan' };
        this.modalBox.setContent(HELP);
        this.modalBox.show();
        return this.render();
      }
      if (name === 'u') return void this.askUser();
    }
    if (printable && this.filter.length < 64) this.setFilter(this.filter + ch);
  }

  /**
   * A changed filter selects its best match (the first row, see fuzzy.ts). A cleared filter keeps the
   * machine that was selected, so "filter, clear, look around it" works.
   */
  private setFilter(filter: string): void {
    if (filter === this.filter) return;
    this.filter = filter;
    this.selectBest = filter !== '';
    this.render();
  }

  private onInputKey(ch: string | undefined, name: string, printable: boolean): void {
    const m = this.modal;
    if (!m) return;
    const f = m.fields[m.index]!;
    if (name === 'escape' || name === 'C-c') return m.done(null);
    if (name === 'enter') {
      if (m.index < m.fields.length - 1) m.index++;
      else return m.done(m.fields.map((x) => x.value));
    } else if (name === 'tab') {
      m.index = (m.index + 1) % m.fields.length;
    } else if (name === 'S-tab' || name === 'up') {
      m.index = (m.index + m.fields.length - 1) % m.fields.length;
    } else if (name === 'down') {
      m.index = (m.index + 1) % m.fields.length;
    } else if (name === 'backspace') {
      f.value = Array.from(f.value).slice(0, -1).join('');
    } else if (name === 'C-u') {
      f.value = '';
    } else if (printable && f.value.length < 4096) {
      f.value += ch;
    } else {
      return;
    }
    this.drawModal();
  }

  private async askUser(): Promise<void> {
    const h = this.current();
    if (!h) return;
    const values = await this.input(
      `Login user for ${h.name}`,
      'Empty = the default (user = NAME in the config file, else your local user name).',
      [{ label: 'User', value: this.deps.users.get(h.name), secret: false }],
    );
    if (!values) return;
    const user = values[0]!.trim();
    if (user && !LOGIN_USER_RE.test(user)) {
      this.status = `Not a user name: ${sanitizeForTerminal(user).slice(0, 64)}`;
    } else {
      try {
        this.deps.users.set(h.name, user);
        this.status = `Login user for ${h.name}: ${this.deps.users.get(h.name)}`;
      } catch (e) {
        if (!isCliError(e)) throw e;
        this.deps.log.warn({ err: e.message, code: e.code }, 'login user not saved');
        this.status = `Login user not saved: ${e.message} [${e.code}]`;
      }
    }
    this.render();
  }

  private current(): HostInfo | null {
    const i = (this.list as unknown as { selected: number }).selected;
    return this.visible[i] ?? null;
  }

  private move(delta: number): void {
    if (this.visible.length === 0) return;
    const i = (this.list as unknown as { selected: number }).selected;
    const next =
      delta === -Infinity
        ? 0
        : delta === Infinity
          ? this.visible.length - 1
          : Math.max(0, Math.min(this.visible.length - 1, i + delta));
    this.selected = this.visible[next]!.name;
    this.render();
  }

  // ---------- drawing ----------

  private render(): void {
    if (this.closed || this.handoff.active) return;
    const now = new Date();
    const width = typeof this.screen.width === 'number' ? this.screen.width : 80;
    const ctx = {
      now,
      rttMs: this.rttMs,
      mine: (h: string) => this.mine.get(h) ?? 0,
      knownHosts: this.deps.knownHosts,
      width,
    };
    // Label pairs typed (env=prod) keep the machines carrying them (label-filter.ts); then the best name
    // match first while a name query is typed (fuzzy.ts), else by name.
    const f = splitPickerFilter(this.filter);
    const labelled = f.labels.length > 0 ? this.hosts.filter((h) => matchesPickerLabels(h, f)) : this.hosts;
    const ranked = rankByName(f.query, labelled, (h) => sanitizeForTerminal(h.name));
    const rows = ranked.map((r) => formatRow(r.item, r.positions, ctx));
    const visible = ranked.map((r) => r.item);
    const prevIndex = (this.list as unknown as { selected: number }).selected ?? 0;
    this.visible = visible;
    this.list.setItems([...rows]);
    let index = this.selectBest ? 0 : this.selected ? visible.findIndex((h) => h.name === this.selected) : -1;
    if (this.selectBest && visible.length > 0) this.selectBest = false;
    if (index < 0) index = Math.min(prevIndex, Math.max(0, visible.length - 1));
    this.list.select(index);
    if (visible[index]) this.selected = visible[index]!.name;
    const url = this.relay?.client.url ?? this.relayUrl() ?? 'no relay';
    const who = this.relay ? ` as ${sanitizeForTerminal(this.relay.user)}` : '';
    const rtt = this.rttMs === null ? '' : `  rtt ${this.rttMs} ms`;
    const count = this.loaded ? `${visible.length}/${this.hosts.length} machines` : 'loading machines…';
    this.title.setContent(blessed.escape(` mssh-tui  ${url}${who}${rtt}  ${count}`));
    if (this.bannerText) {
      this.banner.setContent(blessed.escape(this.bannerText));
      this.banner.show();
    } else {
      this.banner.hide();
    }
    this.header.setContent(blessed.escape(headerLine()));
    const sel = visible[index];
    const userHint = sel ? `  login: ${blessed.escape(this.deps.users.get(sel.name))}@${blessed.escape(sel.name)}` : '';
    const usersNotice = this.deps.users.takeNotice(); // a damaged tui-users.json was set aside (login-users.ts)
    if (usersNotice) this.status = usersNotice;
    this.filterLine.setContent(`Filter: {bold}${blessed.escape(this.filter)}{/bold}{inverse} {/inverse}${userHint}`);
    const keys =
      this.filter === ''
        ? 'Enter connect  u user  r refresh  ? help  q quit'
        : 'Enter connect  Tab user  Esc clear filter  Ctrl-C quit';
    this.statusLine.setContent(blessed.escape(` ${this.status ? `${this.status}  |  ` : ''}${keys}`));
    if (rows.length === 0) {
      const empty = !this.loaded
        ? this.bannerText
          ? '  (no list yet: the relay has not answered)'
          : `  Loading the machines from ${url}…`
        : this.hosts.length === 0
          ? '  (no machines yet)'
          : '  (no machine matches the filter)';
      this.list.setItems([blessed.escape(empty)]);
    }
    this.screen.render();
  }

  // ---------- lifecycle ----------

  async quit(code: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.restoreTerminal();
    const r = this.relay;
    this.relay = null;
    if (r) await Promise.race([r.client.close().catch(() => {}), new Promise((res) => setTimeout(res, 1_000))]);
    this.quitResolve?.(code);
  }

  /** Normal screen, cooked mode, cursor visible: safe to call more than once, from any exit path. */
  restoreTerminal(): void {
    try {
      if (this.handoff.active) this.handoff.give();
    } catch {
      // restoring below anyway
    }
    try {
      this.screen.destroy();
    } catch {
      // terminal already gone
    }
  }
}
