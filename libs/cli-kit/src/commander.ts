/**
 * The three programs parse with commander, with `exitOverride()`: commander then prints its own usage
 * message (`<program>: <problem>` and a hint) and throws instead of exiting. This maps what it threw to
 * the exit-code policy: help and version 0, every usage error 64.
 */
import { EXIT } from './errors.js';

/** The exit code for an error commander threw, or null when `e` is not one of commander's. */
export function commanderExitCode(e: unknown): number | null {
  const c = e as { code?: unknown; exitCode?: unknown } | null;
  if (!c || typeof c !== 'object' || typeof c.code !== 'string' || !c.code.startsWith('commander.')) return null;
  return c.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
}
