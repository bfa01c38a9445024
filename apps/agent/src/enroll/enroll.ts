/**
 * `mssh-agent enroll`: make this machine known to the relay, once, with a one-time token.
 *
 *   1. the target's host keys: `auto` probes 127.0.0.1:22; an SSH server's keys are scanned (fails early if
 *      it is not reachable), the embedded server's key is created once in the state dir
 *   2. generate the Ed25519 identity (DIR/identity.key; the private key never leaves the machine)
 *   3. HTTPS to the relay, certificate pinned (or trusted on first use and printed)
 *   4. POST /v1/agents/enroll { token, name, publicKey, hostKeys, versions }
 *   5. DIR/agent.json records the relay, its fingerprint, the name, the agent id and the target
 */
import {
  EnrollResponse,
  PATHS,
  PROTOCOL_VERSION,
  SOFTWARE_VERSION,
  isWireErrorBody,
  sanitizeForTerminal,
  type EnrollRequest,
} from '@mssh/protocol';
import { AgentError } from '../errors.js';
import pino from 'pino';
import { formatTargetChoice, type TargetChoice } from '../config.js';
import { postJson } from '../dial/relay-http.js';
import { loadOrCreateHostKey } from '../embedded-sshd/index.js';
import { describeResolution, resolveTargetChoice } from '../target/choose-target.js';
import { scanHostKeys } from '../target/host-keys.js';
import { ensureStateDir, isEnrolled, readState, statePath, writeState, type AgentState } from '../state/state-dir.js';
import { loadOrCreateIdentity } from './identity.js';

export interface EnrollOptions {
  relayUrl: URL;
  token: string;
  name: string;
  /** Pinned relay fingerprint, or null to trust on first use (printed). */
  relayFingerprint: string | null;
  stateDir: string;
  /** As given; stored as given in agent.json (`auto` is resolved again at each `run`). */
  target: TargetChoice;
  /** Where user-facing lines go (stdout in the CLI). */
  print: (line: string) => void;
  scanTimeoutMs?: number;
}

/** What to tell the user for each refusal code the relay can answer. */
function refusalMessage(code: string, relayMessage: string, o: EnrollOptions): string {
  const said = sanitizeForTerminal(relayMessage).slice(0, 300);
  switch (code) {
    case 'RLY_ERR_ENROLL_TOKEN_INVALID':
      return `the relay refused the enrolment token (${code}): it is unknown, already used or expired.\nAsk an admin for a new token (mssh-relay agent enroll ${o.name}) and run this again.`;
    case 'RLY_ERR_ENROLL_NAME_MISMATCH':
      return `the enrolment token was issued for another name than "${o.name}" (${code}).\nPass the --name the token was made for, or ask for a token for ${o.name}.`;
    case 'RLY_ERR_NAME_TAKEN':
      return `a machine named "${o.name}" is already enrolled on the relay (${code}).\nPick another --name, or ask an admin to remove the old machine first.`;
    case 'RLY_ERR_PROTOCOL_TOO_OLD':
      return `the relay needs a newer agent (${code}): ${said}\nUpgrade mssh-agent and run this again.`;
    case 'RLY_ERR_BAD_REQUEST':
      return `the relay rejected the enrolment request (${code}): ${said}\nCheck --name and that relay and agent versions match.`;
    default:
      return `the relay refused the enrolment (${sanitizeForTerminal(code).slice(0, 64)}): ${said}`;
  }
}

export async function enroll(o: EnrollOptions): Promise<AgentState> {
  ensureStateDir(o.stateDir);
  if (isEnrolled(o.stateDir)) {
    let who = '';
    try {
      who = ` as ${readState(o.stateDir).name}`;
    } catch {
      // damaged state: still refuse to overwrite it
    }
    throw new AgentError(
      'AGT_ERR_ALREADY_ENROLLED',
      `${o.stateDir} is already enrolled${who} (${statePath(o.stateDir)} exists).\nStart it with \`mssh-agent run --state-dir ${o.stateDir}\`, or enrol into another --state-dir.`,
    );
  }
  const { resolved, why } = await resolveTargetChoice(o.target);
  if (o.target.kind === 'auto') o.print(`Target: ${describeResolution(o.target, resolved, why)}.`);
  const hostKeys =
    resolved.kind === 'tcp'
      ? await scanHostKeys(resolved.address, o.scanTimeoutMs)
      : [(await loadOrCreateHostKey(o.stateDir, pino({ level: 'silent' }))).publicLine];
  const { identity } = loadOrCreateIdentity(o.stateDir);
  const request: EnrollRequest = {
    token: o.token,
    name: o.name,
    publicKey: identity.publicKey,
    hostKeys,
    agentVersion: SOFTWARE_VERSION,
    protocolVersion: PROTOCOL_VERSION,
  };
  const answer = await postJson(o.relayUrl, o.relayFingerprint, PATHS.enroll, request);
  if (o.relayFingerprint === null)
    o.print(`Relay certificate fingerprint: ${answer.fingerprint} (trusted on first use)`);
  if (answer.status < 200 || answer.status > 299) {
    if (isWireErrorBody(answer.body)) {
      throw new AgentError('AGT_ERR_ENROLL_REFUSED', refusalMessage(answer.body.code, answer.body.message, o), {
        relayCode: answer.body.code,
      });
    }
    throw new AgentError(
      'AGT_ERR_RELAY_BAD_ANSWER',
      `the relay answered HTTP ${answer.status} to the enrolment without an error code; is ${o.relayUrl.origin} an mssh relay?`,
    );
  }
  const parsed = EnrollResponse.safeParse(answer.body);
  if (!parsed.success) {
    throw new AgentError(
      'AGT_ERR_RELAY_BAD_ANSWER',
      `the relay's enrolment answer is malformed; check that relay and agent versions match`,
    );
  }
  const state: AgentState = {
    version: 1,
    relayUrl: o.relayUrl.origin,
    relayFingerprint: answer.fingerprint,
    name: parsed.data.name,
    agentId: parsed.data.agentId,
    agentEndpoint: parsed.data.agentEndpoint,
    target: formatTargetChoice(o.target),
    hostKeys,
    enrolledAt: new Date().toISOString(),
  };
  writeState(o.stateDir, state);
  o.print(`Enrolled as ${state.name}. Start the agent with: mssh-agent run --state-dir ${o.stateDir}`);
  return state;
}
