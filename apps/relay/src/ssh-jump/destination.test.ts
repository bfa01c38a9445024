import { describe, expect, it } from 'vitest';
import { decideDestination, destinationName } from './destination.js';

describe('jump destination rule', () => {
  it('passes a machine name on port 22 to the gate (NAME.mssh and upper case too)', () => {
    expect(decideDestination('laptop', 22)).toEqual({ ok: true, host: 'laptop' });
    expect(decideDestination('DB-1.mssh', 22)).toEqual({ ok: true, host: 'db-1' });
    expect(decideDestination('localhost', 22)).toEqual({ ok: true, host: 'localhost' }); // a name: only an agent enrolled as "localhost" is reached
    expect(destinationName('Laptop.MSSH')).toBe('laptop');
  });

  it('refuses addresses, other ports and malformed requests with RLY_ERR_BAD_REQUEST and the reason', () => {
    const cases: Array<[unknown, unknown, RegExp]> = [
      ['127.0.0.1', 22, /not a machine name/],
      ['::1', 22, /not a machine name/],
      ['[::1]', 22, /not a machine name/],
      ['laptop.example.org', 22, /not a machine name/],
      ['', 22, /not a machine name/],
      ['a'.repeat(64), 22, /not a machine name/],
      ['localhost', 80, /port 80: only port 22/],
      ['laptop', 2222, /port 2222: only port 22/],
      ['laptop', 0, /port 0/],
      [undefined, 22, /malformed request/],
      ['laptop', '22', /malformed request/],
    ];
    for (const [h, p, why] of cases) {
      const d = decideDestination(h, p);
      expect(d, `${String(h)}:${String(p)}`).toMatchObject({ ok: false, code: 'RLY_ERR_BAD_REQUEST' });
      expect(d.ok === false && d.reason, `${String(h)}:${String(p)}`).toMatch(why);
    }
  });
});
