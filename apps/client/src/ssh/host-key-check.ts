/**
 * What the SSH layer needs to decide whether to trust the server's host key. The ssh module declares it;
 * known-hosts/host-key-policy.ts implements the product's rule (pinned key wins, first use only when the
 * relay attests the key). Tests or other callers can supply their own.
 */
export interface HostKeyCheck {
  /**
   * Host key algorithms to offer, most preferred first (e.g. the types already pinned, as OpenSSH does),
   * or null for ssh2's defaults.
   */
  algorithms: string[] | null;
  /** Resolve to accept the presented public key blob; throw (a CliError) to refuse the connection. */
  verify(blob: Buffer): void | Promise<void>;
}
