/**
 * A near-free SSH endpoint for the session-rate metric, run as its own process:
 *   node --import tsx bench/lib/null-target.ts PORT HOST_KEY_FILE
 * It is an ssh2 server (so an agent can read its host key at enrolment), but the rate metric only opens
 * and closes TCP connections to it: the figure then measures relay + agent + audit (or bastion + reverse
 * tunnel), not the fork/exec that OpenSSH's sshd pays per connection.
 */
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';

const { Server } = ssh2;
const [portArg, keyFile] = process.argv.slice(2);
if (!portArg || !keyFile) {
  process.stderr.write('usage: null-target.ts PORT HOST_KEY_FILE\n');
  process.exit(2);
}

const server = new Server({ hostKeys: [readFileSync(keyFile)] }, (client) => {
  client.on('error', () => {});
  // Nobody logs in here: refuse every method, the connection is only a target to open and close.
  client.on('authentication', (ctx) => ctx.reject([]));
});
server.on('error', (e: Error) => {
  process.stderr.write(`null target: ${e.message}\n`);
  process.exit(1);
});
server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
