export {
  CliError,
  EXIT,
  KIT_ERRORS,
  exitCodeOf,
  isCliError,
  usageError,
  type CliErrorOptions,
  type KitErrorCode,
} from './errors.js';
export { formatCliError, reportError, toCliError, type ReportOptions } from './report.js';
export { TtyPrompter, noPrompter, readFirstLine, type Prompter } from './prompt.js';
export { PASSWORD_MAX, PASSWORD_MIN, checkNewPassword, readNewPassword, type NewPasswordOptions } from './password.js';
export { PRIVATE_FILE_MODE, writeFileAtomic, writePrivateFile } from './private-file.js';
export { commanderExitCode } from './commander.js';
export { listenErrorReason } from './listen-error.js';
export {
  checkHostName,
  checkUserName,
  createAdminCommands,
  grantRequest,
  labelFlags,
  withLabelRules,
  type AdminCommandOps,
  type GrantArgs,
  type AdminCommands,
  type AdminCommandsOptions,
} from './admin-commands.js';
export {
  SYSTEM_UNIT_DIR,
  UNIT_NAME_RE,
  checkExecutables,
  installService,
  parseOptionsAfterDash,
  quoteExecArg,
  realServiceSystem,
  renderUnit,
  runningProcess,
  underHome,
  withRealPaths,
  type Hardening,
  type InstallServiceFlags,
  type OptionGrammar,
  type Running,
  type InstallResult,
  type InstallServiceOptions,
  type ServiceCodes,
  type ServiceFailure,
  type ServiceSystem,
  type UnitSpec,
} from './systemd-unit.js';
export { SYSTEMD_ANALYZE, systemdAnalyzeVerify } from './systemd-verify.js';
export {
  LOG_FORMATS,
  formatPrettyLine,
  prettyStream,
  resolveLogFormat,
  useColor,
  type LogFormat,
} from './log-format.js';
export { installOneLiner, shQuote } from './agent-install.js';
export { tryLockFile, type FileLockOptions, type FileLockResult } from './file-lock.js';
