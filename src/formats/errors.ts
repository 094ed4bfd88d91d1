/**
 * The one error type of dataroot. Every failure carries a stable machine-readable `code`
 * (BOLT_BAD_META, STORE_NOT_A_DATAROOT, USAGE_UNKNOWN_OPTION, ...) and, where it applies,
 * the file and byte offset. The CLI maps it to exit code 2 and prints it on one line.
 */
export interface ErrorDetails {
  file?: string;
  offset?: number;
  page?: number | string;
  [key: string]: unknown;
}

/**
 * Lookups of an object that is not there: `docker` exits 1 for them ("No such image"), and so does
 * dataroot, whatever the command.
 */
export const NOT_FOUND_CODES: ReadonlySet<string> = new Set(['IMAGE_NOT_FOUND', 'CONTAINER_NOT_FOUND', 'LAYER_NOT_FOUND', 'VOLUME_NOT_FOUND', 'NETWORK_NOT_FOUND', 'IMAGE_AMBIGUOUS', 'CONTAINER_AMBIGUOUS', 'LAYER_AMBIGUOUS']);

export class DatarootError extends Error {
  readonly code: string;
  readonly details: ErrorDetails;
  /** Exit code the CLI uses for this error (2 unless a caller decides otherwise). */
  readonly exitCode: number;

  constructor(code: string, message: string, details: ErrorDetails = {}, exitCode = NOT_FOUND_CODES.has(code) ? 1 : 2) {
    super(message);
    this.name = 'DatarootError';
    this.code = code;
    this.details = details;
    this.exitCode = exitCode;
  }

  toJSON(): { code: string; message: string } & ErrorDetails {
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
