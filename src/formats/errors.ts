/**
 * The one error type of dataroot. Every failure carries a stable machine-readable `code` from the
 * catalog in ./errorcodes.ts (BOLT_BAD_META, STORE_NOT_A_DATAROOT, USAGE_UNKNOWN_OPTION, ...) and,
 * where it applies, the file and byte offset. The CLI exits with the catalog's exit code for it
 * (1 for not-found codes, 2 otherwise) and prints it on one line.
 */
export interface ErrorDetails {
  file?: string;
  offset?: number;
  page?: number | string;
  [key: string]: unknown;
}

import { exitCodeOf, type ErrorCode } from './errorcodes.js';

export type { ErrorCode } from './errorcodes.js';

export class DatarootError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;
  /** Exit code the CLI uses for this error: the catalog's (1 for not-found codes, 2 otherwise). */
  readonly exitCode: 1 | 2;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = 'DatarootError';
    this.code = code;
    this.details = details;
    this.exitCode = exitCodeOf(code);
  }

  toJSON(): { code: ErrorCode; message: string } & ErrorDetails {
    return { code: this.code, message: this.message, ...this.details };
  }

  /** One line for humans: `CODE: message (file, offset)`. */
  oneLine(): string {
    const where: string[] = [];
    if (this.details.file !== undefined) where.push(String(this.details.file));
    if (this.details.offset !== undefined) where.push(`offset ${this.details.offset}`);
    if (this.details.page !== undefined) where.push(`page ${this.details.page}`);
    const suffix = where.length ? ` (${where.join(', ')})` : '';
    return `${this.code}: ${this.message.replace(/\s*\n\s*/g, ' ')}${suffix}`;
  }
}
