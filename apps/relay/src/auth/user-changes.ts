/**
 * Changes to who a user is that live connections must hear about at once: the SSH jump listener closes
 * the connections a removed key (or a user's old role) authenticated. Emitted by the services that make
 * the change (ssh-key-service.ts, admin-service.ts) after it is committed; listeners must not throw and
 * must not block (a listener's exception is swallowed so one bad listener cannot fail an admin command).
 *
 * Changes made behind the relay's back (SQL, another relay on the same database) are not heard here:
 * the jump listener also re-checks the user, key and role on every channel it opens.
 */
export type UserChange =
  | { kind: 'key_removed'; user: string; fingerprint: string }
  | { kind: 'role_changed'; user: string; from: string | null; to: string | null }
  | { kind: 'disabled'; user: string; killSessions: boolean }
  | { kind: 'password_changed'; user: string };

export interface UserChangeSource {
  /** Call `fn` for every change from now on; returns the unsubscribe function. */
  subscribe(fn: (change: UserChange) => void): () => void;
}

export class UserChanges implements UserChangeSource {
  private readonly listeners = new Set<(change: UserChange) => void>();

  subscribe(fn: (change: UserChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change: UserChange): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(change);
      } catch {
        // a listener's failure is its own (it logs); the change itself is done
      }
    }
  }
}
