import { DatarootError } from '../formats/errors.js';
import type { Confined } from '../io/confined.js';
import { openSqlite, type SqliteDb } from '../io/sqlite.js';
import { problem, type Problem } from './problems.js';

/**
 * `linkgraph.db`, the container names and links of Docker ≤ 1.9 (moby v1.9.1 pkg/graphdb/graphdb.go):
 * SQLite tables `entity (id)` and `edge (entity_id, parent_id, name)` with a unique index on
 * (parent_id, name). The root entity is "0"; a container's name is the edge (cid, "0", name), path
 * `/name`; `--link db:alias` from web is the edge (db, web, alias), path `/web/alias`.
 *
 * Read once, at open: dockerd's own queries are run against the file (so the rows come in the order
 * SQLite gives dockerd, through the same index), and only to the depth dockerd walks.
 */

/** Bound for a linkgraph.db read whole (a host with thousands of containers has a few MiB). */
export const LINKGRAPH_MAX = 64 << 20;

export const LINKGRAPH = 'linkgraph.db';

export interface WalkEntry {
  path: string;
  id: string;
}

export interface LinkGraph {
  /** Whether linkgraph.db exists (and could be read). */
  present: boolean;
  problems: Problem[];
  /** `Walk("/", fn, 1)` (v1.9.1 daemon/list.go:181): every path of a container at depth 1 and 2, by entity id, in walk order. */
  names: Map<string, string[]>;
  /** `db.get(path)`: the entity a path leads to (parts resolved edge by edge), or undefined. */
  get(path: string): string | undefined;
  /** `Walk(name, fn, 0)`: the children of the entity at a path, as (full path, id). */
  children(path: string): WalkEntry[];
  /** Every edge, for verify: (entity, parent, name). */
  edges: { entityId: string; parentId: string | null; name: string }[];
}

const EMPTY: LinkGraph = { present: false, problems: [], names: new Map(), get: () => undefined, children: () => [], edges: [] };

/** What database/sql's Scan into a string makes of a SQLite value (NULL cannot be scanned: an error). */
function scanString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return undefined;
}

/** path.Join of Go for a parent path and an edge name. */
function joinPath(parent: string, name: string): string {
  const parts = `${parent}/${name}`.split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return `/${out.join('/')}`;
}

/**
 * Reads linkgraph.db of a root. A missing file is no names at all (dockerd 1.9 would create an
 * empty one); a file SQLite refuses, or whose tables are not plain tables, is a coded problem and
 * no names. Never throws for the content of the file.
 */
export async function readLinkGraph(fs: Confined): Promise<LinkGraph> {
  let db: SqliteDb | undefined;
  try {
    db = await openSqlite(fs, LINKGRAPH, LINKGRAPH_MAX);
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    return {
      ...EMPTY,
      present: fs.exists(LINKGRAPH),
      problems: [problem(e.code === 'SQLITE_ERROR' ? 'SQLITE_CORRUPT' : e.code, `linkgraph.db cannot be read: ${e.message}`, LINKGRAPH)],
    };
  }
  if (db === undefined) return EMPTY;
  try {
    return load(db);
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    return { ...EMPTY, present: true, problems: [problem(e.code, `linkgraph.db cannot be read: ${e.message}`, LINKGRAPH)] };
  } finally {
    db.close();
  }
}

function load(db: SqliteDb): LinkGraph {
  const problems: Problem[] = [];
  // A hostile file could make `edge` a view (a recursive one never ends) or a virtual table:
  // only a plain table is queried.
  const schema = db.all("SELECT type, name, sql FROM sqlite_master WHERE name IN ('entity', 'edge')");
  const edgeRow = schema.find((r) => r[1] === 'edge');
  if (edgeRow === undefined) {
    problems.push(problem('LINKGRAPH_SCHEMA', 'linkgraph.db has no edge table: no container has a name or a link in it', LINKGRAPH));
    return { ...EMPTY, present: true, problems };
  }
  if (edgeRow[0] !== 'table' || /^\s*create\s+virtual\b/i.test(String(edgeRow[2] ?? ''))) {
    problems.push(
      problem(
        'LINKGRAPH_SCHEMA',
        `linkgraph.db's edge is a ${edgeRow[0] === 'table' ? 'virtual table' : String(edgeRow[0])}, not a table: it is not read`,
        LINKGRAPH,
      ),
    );
    return { ...EMPTY, present: true, problems };
  }

  const edges: LinkGraph['edges'] = [];
  let nulls = 0;
  for (const r of db.all('SELECT entity_id, parent_id, name FROM edge')) {
    const entityId = scanString(r[0]);
    const name = scanString(r[2]);
    if (entityId === undefined || name === undefined) {
      nulls++;
      continue;
    }
    edges.push({ entityId, parentId: r[1] === null ? null : (scanString(r[1]) ?? null), name });
  }

  // dockerd's query for the children of an entity (graphdb.go `children`), memoised per parent.
  const childCache = new Map<string, { rows: { id: string; name: string }[]; bad: boolean }>();
  const childRows = (parent: string): { rows: { id: string; name: string }[]; bad: boolean } => {
    let c = childCache.get(parent);
    if (c === undefined) {
      const rows: { id: string; name: string }[] = [];
      let bad = false;
      for (const r of db.all('SELECT entity_id, name FROM edge where parent_id = ?;', [parent])) {
        const id = scanString(r[0]);
        const name = scanString(r[1]);
        if (id === undefined || name === undefined) bad = true;
        else rows.push({ id, name });
      }
      c = { rows, bad };
      childCache.set(parent, c);
    }
    return c;
  };
  // graphdb.go `child`: the entity of (parent, name); QueryRow takes the first row.
  const child = (parent: string, name: string): string | undefined => {
    const r = db.all('SELECT entity_id FROM edge WHERE parent_id = ? AND name = ?;', [parent, name], 1)[0];
    return r === undefined ? undefined : scanString(r[0]);
  };

  // Walk("/", fn, 1): the root's children (depth 1) and each of their children (depth 0 below it).
  // A row dockerd cannot scan (a NULL) fails the whole walk before any name is reported.
  const names = new Map<string, string[]>();
  const walked: WalkEntry[] = [];
  let walkFailed = childRows('0').bad;
  for (const c of childRows('0').rows) {
    const p = joinPath('/', c.name);
    walked.push({ path: p, id: c.id });
    const sub = childRows(c.id);
    if (sub.bad) walkFailed = true;
    for (const s of sub.rows) walked.push({ path: joinPath(p, s.name), id: s.id });
  }
  if (walkFailed) {
    problems.push(
      problem(
        'LINKGRAPH_ROW_INVALID',
        'linkgraph.db has an edge with a NULL entity_id or name: dockerd 1.9 cannot walk the names, so no container shows a name in docker ps',
        LINKGRAPH,
      ),
    );
  } else {
    for (const w of walked) {
      const list = names.get(w.id) ?? [];
      list.push(w.path);
      names.set(w.id, list);
    }
  }
  if (nulls > 0 && !walkFailed) problems.push(problem('LINKGRAPH_ROW_INVALID', `linkgraph.db has ${nulls} edge(s) with a NULL entity_id or name`, LINKGRAPH));

  // Paths looked up later (inspect by name, links of a container) are resolved now, while the
  // file is open: the paths of the walk, and the children of each of them.
  const resolved = new Map<string, string | undefined>([['/', '0']]);
  const get = (path: string): string | undefined => {
    if (resolved.has(path)) return resolved.get(path);
    let e: string | undefined = '0';
    for (const part of path.split('/')) {
      if (part === '' || e === undefined) continue;
      e = child(e, part);
    }
    resolved.set(path, e);
    return e;
  };
  const kids = new Map<string, WalkEntry[]>();
  for (const w of walked) {
    const id = get(w.path);
    if (id === undefined || kids.has(w.path)) continue;
    const c = childRows(id);
    kids.set(w.path, c.bad ? [] : c.rows.map((r) => ({ path: joinPath(w.path, r.name), id: r.id })));
  }
  return {
    present: true,
    problems,
    names,
    // After close, a path not resolved while open is resolved over the edges read (first match, as QueryRow).
    get: (path) => {
      const p = path.startsWith('/') ? path : `/${path}`;
      if (resolved.has(p)) return resolved.get(p);
      let e: string | undefined = '0';
      for (const part of p.split('/')) {
        if (part === '' || e === undefined) continue;
        const from: string = e;
        e = edges.find((x) => x.parentId === from && x.name === part)?.entityId;
      }
      return e;
    },
    children: (path) => kids.get(path) ?? [],
    edges,
  };
}
