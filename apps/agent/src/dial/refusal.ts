/**
 * A permanent refusal by the relay (unknown key, revoked, name mismatch, protocol too old), as the error
 * `mssh-agent run` ends with: what the relay said, its code, and what to do. Exit 78 (EX_CONFIG): a
 * service manager should not restart the agent until its state changes (RestartPreventExitStatus=78).
 */
import { CliError } from '@mssh/cli-kit';
import { EXIT_REFUSED } from './supervisor.js';

/** What to do about a refusal, by the relay's code. */
export function refusalHint(code: string, stateDir: string, name: string): string {
  switch (code) {
    case 'RLY_ERR_PROTOCOL_TOO_OLD':
      return 'Upgrade mssh-agent, then start it again.';
    case 'RLY_ERR_NAME_TAKEN':
      return `Another machine holds this name, or agent.json in ${stateDir} was edited. Enrol again with a fresh token: mssh-agent enroll --relay URL --token T --name ${name} --state-dir NEW_DIR`;
    default:
      return `Ask an admin for a new token (mssh-relay agent enroll ${name}) and enrol again: mssh-agent enroll --relay URL --token T --name ${name} --state-dir NEW_DIR`;
  }
}

export function refusalError(refusal: { code: string; message: string }, stateDir: string, name: string): CliError {
  return new CliError(
    refusal.code,
    `the relay refused this agent for good: ${refusal.message}`,
    refusalHint(refusal.code, stateDir, name),
    { exitCode: EXIT_REFUSED },
  );
}
