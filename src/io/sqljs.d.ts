/** The part of sql.js (SQLite compiled to WebAssembly) dataroot uses; sql.js ships no types. */
declare module 'sql.js' {
  type SqlValue = number | string | Uint8Array | null;
  interface Statement {
    bind(values?: SqlValue[]): boolean;
    step(): boolean;
    get(): SqlValue[];
    free(): boolean;
  }
  interface Database {
    prepare(sql: string, params?: SqlValue[]): Statement;
    run(sql: string, params?: SqlValue[]): Database;
    close(): void;
  }
  interface SqlJsStatic {
    Database: new (data?: Uint8Array | null) => Database;
  }
  export default function initSqlJs(config?: { wasmBinary?: ArrayBuffer | Uint8Array; locateFile?: (file: string) => string }): Promise<SqlJsStatic>;
  export type { Database, Statement, SqlValue, SqlJsStatic };
}
