/**
 * Audit event types and their stable codes. A code is never reused; the README lists them. The suffix
 * says the outcome: I = information (success), W = warning (refused or failed).
 */
export const AUDIT = {
  userLogin: { type: 'user.login', code: 'USR001I' },
  userLoginFailed: { type: 'user.login', code: 'USR001W' },
  userLogout: { type: 'user.logout', code: 'USR002I' },
  userCreated: { type: 'user.created', code: 'USR003I' },
  agentEnrolled: { type: 'agent.enrolled', code: 'AGT001I' },
  agentConnected: { type: 'agent.connected', code: 'AGT002I' },
  agentRejected: { type: 'agent.rejected', code: 'AGT002W' },
  agentDisconnected: { type: 'agent.disconnected', code: 'AGT003I' },
  sessionStart: { type: 'session.start', code: 'SES001I' },
  sessionEnd: { type: 'session.end', code: 'SES002I' },
} as const;
