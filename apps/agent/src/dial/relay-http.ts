/**
 * A JSON request to the relay's HTTPS API over a pinned HTTP/2 connection (used by enrolment).
 */
import { constants as h2c, type ClientHttp2Stream } from 'node:http2';
import { HEADERS, PROTOCOL_VERSION, SOFTWARE_VERSION } from '@mssh/protocol';
import { AgentError } from '../errors.js';
import { http2ConnectPinned } from './pinned-tls.js';
import { readBody } from '@mssh/protocol/transport';

export interface JsonAnswer {
  status: number;
  /** Parsed JSON, or the raw text when the answer is not JSON. */
  body: unknown;
  /** The relay certificate fingerprint seen on this connection. */
  fingerprint: string;
}

const ANSWER_MAX_BYTES = 1024 * 1024;

export async function postJson(
  url: URL,
  fingerprint: string | null,
  path: string,
  payload: unknown,
  timeoutMs = 15_000,
): Promise<JsonAnswer> {
  const { session, fingerprint: seen } = await http2ConnectPinned(url, fingerprint, timeoutMs);
  try {
    const answer = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      let stream: ClientHttp2Stream;
      try {
        stream = session.request({
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/json',
          accept: 'application/json',
          [HEADERS.protocolVersion]: String(PROTOCOL_VERSION),
          [HEADERS.softwareVersion]: SOFTWARE_VERSION,
        });
      } catch (err) {
        reject(err);
        return;
      }
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!stream.destroyed) stream.close(h2c.NGHTTP2_CANCEL);
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      stream.on('error', fail);
      let responded = false;
      stream.once('response', (headers) => {
        responded = true;
        readBody(stream, ANSWER_MAX_BYTES, timeoutMs).then(
          (body) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ status: Number(headers[':status']), body });
          },
          (err: Error) => fail(err),
        );
      });
      // After the answer started, readBody reports an early close itself ('close' can come before its result).
      stream.once('close', () => {
        if (!responded) fail(new Error('the relay closed the request without an answer'));
      });
      stream.end(JSON.stringify(payload));
    });
    const text = answer.body.toString('utf8');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: answer.status, body, fingerprint: seen };
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw new AgentError(
      'AGT_ERR_RELAY_UNREACHABLE',
      `the request to ${url.origin}${path} failed (${(err as Error).message}); check that the relay is running`,
      { cause: err },
    );
  } finally {
    session.close();
    setTimeout(() => {
      if (!session.destroyed) session.destroy();
    }, 1_000).unref();
  }
}
