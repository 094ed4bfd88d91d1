import { DatarootError } from '../formats/errors.js';
import type { Confined } from './confined.js';

/**
 * SQLite files of evidence (pre-1.10 `linkgraph.db`), read with sql.js: SQLite compiled to
 * WebAssembly, so nothing is built natively and nothing is opened on disk. The file is read once
 * through the confined layer (bounded, O_NOFOLLOW, a regular file only) and SQLite works on a copy
 * in the WebAssembly heap: the evidence is never opened for writing, never locked, and no journal
 * or WAL file is created next to it. The copy is also put in query-only mode.
 */

type SqlJs = import('sql.js').SqlJsStatic;
type SqlValue = import('sql.js').SqlValue;

let engine: Promise<SqlJs> | undefined;

async function sqljs(): Promise<SqlJs> {
  engine ??= import('sql.js').then((m) => m.default());
  return engine;
}

/** One SQLite database, read-only, in memory. */
export interface SqliteDb {
  /** Every row of a query, values as SQLite returns them. At most `maxRows` rows (SQLITE_TOO_MANY_ROWS past it). */
  all(sql: string, params?: SqlValue[], maxRows?: number): SqlValue[][];
  close(): void;
}

/** Most rows a query of evidence returns. */
export const MAX_ROWS = 1_000_000;

/** SQLite's own messages for a file that is not (or no longer) a database, as a coded error. */
export function sqliteError(e: unknown, file: string): DatarootError {
  if (e instanceof DatarootError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const code = /not a database|malformed|corrupt|disk image/i.test(msg) ? 'SQLITE_CORRUPT' : 'SQLITE_ERROR';
  return new DatarootError(code, `${file}: ${msg}`, { file });
}

/**
 * Opens a SQLite file of the root: undefined when it does not exist; FILE_TOO_LARGE, SYMLINK_*,
 * FILE_NOT_REGULAR from the confined layer; SQLITE_CORRUPT when SQLite refuses the bytes.
 */
export async function openSqlite(fs: Confined, rel: string, max: number): Promise<SqliteDb | undefined> {
  const bytes = fs.readFile(rel, { max, what: 'SQLite database' });
  if (bytes === undefined) return undefined;
  const SQL = await sqljs();
  let db: import('sql.js').Database;
  try {
    db = new SQL.Database(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    db.run('PRAGMA query_only = 1');
  } catch (e) {
    throw sqliteError(e, rel);
  }
  return {
    all(sql, params = [], maxRows = MAX_ROWS) {
      const rows: SqlValue[][] = [];
      let st: import('sql.js').Statement | undefined;
      try {
        st = db.prepare(sql, params);
        while (st.step()) {
          if (rows.length >= maxRows) throw new DatarootError('SQLITE_TOO_MANY_ROWS', `${rel}: more than ${maxRows} rows`, { file: rel });
          rows.push(st.get());
        }
      } catch (e) {
        throw sqliteError(e, rel);
      } finally {
        st?.free();
      }
      return rows;
    },
    close() {
      db.close();
    },
  };
}
