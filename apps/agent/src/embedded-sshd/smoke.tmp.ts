import { createServer } from 'node:net';
import pino from 'pino';
import { createEmbeddedSshd, addAuthorizedKey } from './index.js';
const sshd = await createEmbeddedSshd({ stateDir: '/tmp/esd/state2', sftpServerPath: null, logger: pino({ level: 'debug' }, pino.destination(2)) });
await addAuthorizedKey('/tmp/esd/state2', '/tmp/esd/ck.pub');
const srv = createServer((s) => sshd.handleConnection(s)).listen(2298, '127.0.0.1');
setTimeout(() => { void sshd.close().then(() => srv.close()); }, 30000);
