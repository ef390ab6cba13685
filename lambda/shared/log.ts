import { UNFINISHED_WORK_MARKER } from '../../lib/private/handler-props';

/**
 * One JSON log line per decision. Every string that passes through here, and every error message the
 * handler returns, is scrubbed of the secret values read during this invocation.
 */

const sensitive = new Set<string>();

/** Registers a value that must never leave the handler (a secret string, a password). */
export function registerSensitive(value: string): void {
  if (value.length === 0) return;
  sensitive.add(value);
  // Log lines are JSON: a value with quotes or backslashes appears there escaped.
  sensitive.add(JSON.stringify(value).slice(1, -1));
}

/** Forgets the values of the previous invocation (Lambda reuses the module between invocations). */
export function resetSensitive(): void {
  sensitive.clear();
}

/** Replaces every registered secret value in `text`, longest first so a password inside a JSON secret goes too. */
export function scrub(text: string): string {
  let result = text;
  for (const value of [...sensitive].sort((a, b) => b.length - a.length)) {
    result = result.split(value).join('***');
  }
  return result;
}

export type LogFields = Record<string, string | number | boolean | string[] | undefined>;

export function log(message: string, fields: LogFields = {}): void {
  console.log(scrub(JSON.stringify({ level: 'INFO', message, ...fields })));
}

export function warn(message: string, fields: LogFields = {}): void {
  console.warn(scrub(JSON.stringify({ level: 'WARN', message, ...fields })));
}

/**
 * A warning that the event answered while a user stays unlike its declaration, and that someone must look: the line
 * carries `UNFINISHED_WORK_MARKER`, which the log group's metric filter counts for `MqUserProvider.unfinishedWorkAlarm`.
 */
export function unfinished(message: string, fields: LogFields = {}): void {
  warn(message, { ...fields, alarm: UNFINISHED_WORK_MARKER });
}

// CloudFormation shows the failure reason in stack events; its whole response must stay under 4 KB.
const MAX_REASON_LENGTH = 900;

/** The error to throw to the Provider framework: scrubbed of secrets and short enough for CloudFormation. */
export function failure(error: unknown): Error {
  const message = scrub(error instanceof Error ? error.message : String(error));
  return new Error(message.length > MAX_REASON_LENGTH ? `${message.slice(0, MAX_REASON_LENGTH - 3)}...` : message);
}
