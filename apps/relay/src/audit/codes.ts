/**
 * Audit event types and their stable codes. A code is never reused; docs/audit.md lists them. The suffix
 * says the outcome: I = information (success), W = warning (refused or failed).
 * Every event type of the catalogue is here up front, so features emit with `audit.emit({ ...AUDIT.x, ... })`.
 */
export const AUDIT = {
  userLogin: { type: 'user.login', code: 'USR001I' },
  userLoginFailed: { type: 'user.login', code: 'USR001W' },
  userLogout: { type: 'user.logout', code: 'USR002I' },
  userCreated: { type: 'user.created', code: 'USR003I' },
  userDisabled: { type: 'user.disabled', code: 'USR004I' },
  userEnabled: { type: 'user.enabled', code: 'USR005I' },
  userPasswordChanged: { type: 'user.password_changed', code: 'USR006I' },
  userRoleChanged: { type: 'user.role_changed', code: 'USR007I' },
  tokenRejected: { type: 'token.rejected', code: 'TOK001W' },
  agentEnrolled: { type: 'agent.enrolled', code: 'AGT001I' },
  agentConnected: { type: 'agent.connected', code: 'AGT002I' },
  agentRejected: { type: 'agent.rejected', code: 'AGT002W' },
  agentDisconnected: { type: 'agent.disconnected', code: 'AGT003I' },
  agentRevoked: { type: 'agent.revoked', code: 'AGT004I' },
  agentForgotten: { type: 'agent.forgotten', code: 'AGT005I' },
  /** An admin set or changed a machine's labels (details: from, to, sessionsEnded). */
  agentLabelsChanged: { type: 'agent.labels_changed', code: 'AGT006I' },
  agentEnrollFailed: { type: 'agent.enroll_failed', code: 'AGT001W' },
  sessionStart: { type: 'session.start', code: 'SES001I' },
  sessionEnd: { type: 'session.end', code: 'SES002I' },
  sessionDenied: { type: 'session.denied', code: 'SES003W' },
  grantAdded: { type: 'grant.added', code: 'GRT001I' },
  grantRemoved: { type: 'grant.removed', code: 'GRT002I' },
  keyRotated: { type: 'key.rotated', code: 'KEY001I' },
  sshKeyAdded: { type: 'ssh_key.added', code: 'KEY002I' },
  sshKeyRemoved: { type: 'ssh_key.removed', code: 'KEY003I' },
  relayStarted: { type: 'relay.started', code: 'RLY001I' },
  relayStopped: { type: 'relay.stopped', code: 'RLY002I' },
  relayDraining: { type: 'relay.draining', code: 'RLY003I' },
  /** A fleet member's lease expired; this relay declared it lost and closed its sessions (relay_crashed). */
  relayLost: { type: 'relay.lost', code: 'RLY004W' },
  auditPruned: { type: 'audit.pruned', code: 'AUD001I' },
} as const;

export type AuditKind = (typeof AUDIT)[keyof typeof AUDIT];
