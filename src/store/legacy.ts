import { DatarootError } from '../formats/errors.js';
import { goField, isObj } from '../formats/docker/godecode.js';
import { normalizeLocalName19, parseRepositoryTag19, truncateId19 } from '../formats/docker/legacyapi.js';
import { parseGoTime } from '../formats/docker/gotime.js';
import { LIMITS, type Confined } from '../io/confined.js';
import { readJson, readText } from './fsread.js';
import { HEX64, LAYOUT as L } from './layout.js';
import { readLinkGraph, type LinkGraph } from './linkgraph.js';
import { problem, type Problem } from './problems.js';
import { realDir, type OpenedRoot } from './root.js';

/**
 * A data-root written before Docker 1.10 (the "graph" era, moby v1.9.1 and earlier): one directory
 * per image under `graph/<v1 id>/` (image ID = layer ID = driver directory name, random, not
 * content-addressed), tags in `repositories-<driver>`, containers in `containers/<id>/config.json`
 * and `hostconfig.json`, names and links in `linkgraph.db`. Read as dockerd 1.9 loads it at start
 * (graph.restore, TagStore.reload, daemon.restore), read-only; damaged items carry problems.
 */

/** Drivers of Docker 1.9, in its priority order (v1.9.1 daemon/graphdriver/driver_linux.go:47). */
export const DRIVERS_19 = ['aufs', 'btrfs', 'zfs', 'devicemapper', 'overlay', 'vfs'] as const;

export const GRAPH_DIR = 'graph';
export const REPOSITORIES_PREFIX = 'repositories-';

/** graph/<id>/ file names (v1.9.1 graph/graph.go:115-121), plus what the 1.10 migration adds (v1.10.3 migrate/v1/migratev1.go:39-50). */
export const GRAPH_FILES = {
  json: 'json',
  layersize: 'layersize',
  checksum: 'checksum',
  tarData: 'tar-data.json.gz',
  v1Compatibility: 'v1Compatibility',
  parent: 'parent',
} as const;
export const MIGRATION_FILES = ['.migration-diffid', '.migration-size', '.migration-tardata'] as const;
export const MIGRATION_ROOT_FILES = ['.migration-v1-images.json', '.migration-v1-tags'] as const;

/** `repositories-<driver>` files of a root, by driver name. */
export function repositoryDrivers(fs: Confined): string[] {
  return fs
    .names('')
    .filter((n) => n.startsWith(REPOSITORIES_PREFIX) && n.length > REPOSITORIES_PREFIX.length)
    .map((n) => n.slice(REPOSITORIES_PREFIX.length));
}

/** Whether an image/<driver>/ store holds anything (images, layers or tags). */
function storePopulated(fs: Confined, d: string): boolean {
  if (fs.names(L.imageContentDir(d)).some((n) => HEX64.test(n))) return true;
  if (fs.names(L.layerDbDir(d)).some((n) => HEX64.test(n))) return true;
  const st = fs.kind(L.repositories(d)) === 'file' ? fs.lstat(L.repositories(d)) : undefined;
  return st !== undefined && st.size > '{"Repositories":{}}'.length;
}

/**
 * A pre-1.10 root: `graph/` and a `repositories-<driver>`, and no populated `image/<driver>/`
 * store. A root migrated by 1.10 has both and is read as the ≥1.10 root it is.
 */
export function isLegacyRoot(r: OpenedRoot): boolean {
  if (!r.fs.isDir(GRAPH_DIR) || repositoryDrivers(r.fs).length === 0) return false;
  return !r.imageStores.some((d) => storePopulated(r.fs, d));
}

/** What a pre-1.10 engine (and the 1.10 migration) left in a root that is now read as ≥1.10. */
export interface LegacyLeftovers {
  graphImages: number;
  repositories: string[];
  linkgraph: boolean;
  migrationFiles: string[];
  /** Containers that still hold a pre-1.10 config.json. */
  legacyConfigs: number;
}

export function legacyLeftovers(fs: Confined): LegacyLeftovers | undefined {
  const graphImages = fs.names(GRAPH_DIR).filter((n) => HEX64.test(n)).length;
  const repositories = repositoryDrivers(fs).map((d) => `${REPOSITORIES_PREFIX}${d}`);
  const linkgraph = fs.kind('linkgraph.db') === 'file';
  const migrationFiles = MIGRATION_ROOT_FILES.filter((f) => fs.exists(f));
  const legacyConfigs = fs.names(L.containersDir).filter((n) => HEX64.test(n) && fs.kind(`${L.containersDir}/${n}/config.json`) === 'file').length;
  if (graphImages === 0 && repositories.length === 0 && !linkgraph && migrationFiles.length === 0 && legacyConfigs === 0) return undefined;
  return { graphImages, repositories, linkgraph, migrationFiles, legacyConfigs };
}

/** One `graph/<id>/` directory as `loadImage` (v1.9.1 graph/graph.go:532) reads it. */
export interface LegacyImage {
  /** The directory name (64 hex). */
  id: string;
  /** graph/<id>, relative to the root. */
  dir: string;
  /** The decoded json (undefined when it does not decode as image.Image). */
  json: Record<string, unknown> | undefined;
  /** The id field of json (or the directory name when it has none). */
  jsonId: string;
  /** Parent as loadImage sets it: json parent, else parent_id's hex, overridden by the parent file. */
  parent: string;
  /** layersize, or -1 when the file is missing (1.9 then computes it from the driver). */
  size: number;
  created: string | undefined;
  /** The driver has this layer (graphdriver Exists), so graph.restore keeps the image. */
  driverExists: boolean;
  /** graph.restore registered it: driver has it and loadImage succeeded. */
  restored: boolean;
  /** graph.Get succeeds: restored, and json's id is the directory name. */
  gettable: boolean;
  files: { checksum: string | undefined; tarData: boolean; v1Compatibility: boolean; parentFile: boolean; migration: string[] };
  problems: Problem[];
}

export interface LegacyRef {
  repo: string;
  ref: string;
  id: string;
}

/** A container as daemon.restore (v1.9.1 daemon/daemon.go:262) sees it. */
export interface LegacyContainer {
  id: string;
  dir: string;
  config: Record<string, unknown> | undefined;
  hostConfig: Record<string, unknown> | undefined;
  hostConfigFile: boolean;
  /** config.json decoded, its ID is the directory name, and hostconfig.json (if any) decoded: load() succeeded. */
  loaded: boolean;
  /** Its Driver is the root's driver ("" counts as aufs): daemon.restore registers it. */
  driverMatch: boolean;
  /** Keys of a 1.10 config.v2.json beside config.json (the root was migrated). */
  migrated: boolean;
  problems: Problem[];
}

const DIGEST_ANY = /^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;

function optString(o: Record<string, unknown>, key: string, problems: Problem[], where: string): string | undefined {
  const v = goField(o, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    problems.push(problem('LEGACY_JSON_TYPE', `${key} is ${Array.isArray(v) ? 'an array' : typeof v}, not a string: dockerd's JSON decode fails`, where));
    return undefined;
  }
  return v;
}

function optObject(o: Record<string, unknown>, key: string, problems: Problem[], where: string): void {
  const v = goField(o, key);
  if (v !== undefined && v !== null && !isObj(v)) problems.push(problem('LEGACY_JSON_TYPE', `${key} is not a JSON object: dockerd's JSON decode fails`, where));
}

function optTime(o: Record<string, unknown>, key: string, problems: Problem[], where: string): string | undefined {
  const s = optString(o, key, problems, where);
  if (s !== undefined && parseGoTime(s) === undefined)
    problems.push(problem('LEGACY_JSON_TYPE', `${key} ${JSON.stringify(s.slice(0, 60))} is not an RFC 3339 time: dockerd's JSON decode fails`, where));
  return s;
}

function optInt(o: Record<string, unknown>, key: string, problems: Problem[], where: string): void {
  const v = goField(o, key);
  if (v !== undefined && v !== null && !(typeof v === 'number' && Number.isInteger(v)))
    problems.push(problem('LEGACY_JSON_TYPE', `${key} is not an integer: dockerd's JSON decode fails`, where));
}

/** strconv.ParseInt(s, 10, 64): an optional sign and decimal digits, nothing else. */
function parseInt64(s: string): number | undefined {
  if (!/^[+-]?\d{1,19}$/.test(s)) return undefined;
  const n = BigInt(s);
  if (n > 9223372036854775807n || n < -9223372036854775808n) return undefined;
  return Number(n);
}

/** The pre-1.10 store of one root. */
export class LegacyStore {
  readonly fs: Confined;
  readonly shownRoot: string;
  readonly driverNotes: string[];
  private cache = new Map<string, unknown>();

  private constructor(
    readonly root: OpenedRoot,
    readonly driver: string,
    driverNotes: string[],
    readonly links: LinkGraph,
  ) {
    this.fs = root.fs;
    this.driverNotes = driverNotes;
    this.shownRoot = root.fromArchive ? archiveRootOf(root.fs) : realDir(root.dir);
  }

  /**
   * Opens a pre-1.10 root. The driver is the one named by `repositories-<driver>` (with several,
   * `--driver` chooses, else the first of 1.9's priority list whose directory exists).
   */
  static async open(root: OpenedRoot, flag?: string): Promise<LegacyStore> {
    const drivers = repositoryDrivers(root.fs);
    const notes: string[] = [];
    let driver: string | undefined;
    if (flag !== undefined) {
      driver = flag;
      if (!drivers.includes(flag))
        notes.push(
          `--driver ${flag}: there is no ${REPOSITORIES_PREFIX}${flag} in this root (it has ${drivers.map((d) => REPOSITORIES_PREFIX + d).join(', ') || 'none'})`,
        );
    } else if (drivers.length === 1) driver = drivers[0]!;
    else {
      driver = DRIVERS_19.find((d) => drivers.includes(d) && root.fs.isDir(d)) ?? DRIVERS_19.find((d) => drivers.includes(d)) ?? drivers[0];
      notes.push(`several tag stores: ${drivers.map((d) => REPOSITORIES_PREFIX + d).join(', ')}; reading ${driver} (--driver chooses)`);
    }
    if (driver === undefined) throw new DatarootError('STORE_NO_IMAGE_STORE', `${root.source} has graph/ but no repositories-<driver>`, { file: root.source });
    if (!(DRIVERS_19 as readonly string[]).includes(driver)) {
      throw new DatarootError(
        'STORE_DRIVER_UNKNOWN',
        `${REPOSITORIES_PREFIX}${driver}: "${driver}" is not a graphdriver of Docker 1.9 (${DRIVERS_19.join(', ')})`,
        { driver },
      );
    }
    const links = await readLinkGraph(root.fs);
    return new LegacyStore(root, driver, notes, links);
  }

  private once<T>(key: string, fn: () => T): T {
    if (!this.cache.has(key)) this.cache.set(key, fn());
    return this.cache.get(key) as T;
  }

  /** A path inside the root as dockerd would print it. */
  shown(rel: string): string {
    return rel === '' ? this.shownRoot : `${this.shownRoot}/${rel}`;
  }

  get repositoriesFile(): string {
    return `${REPOSITORIES_PREFIX}${this.driver}`;
  }

  /**
   * graphdriver Exists(id) of 1.9 for the root's driver, offline. zfs asks `zfs list`, which cannot
   * be answered from the directory: its layers count as present, and verify says so.
   */
  driverHas(id: string): { exists: boolean; problem?: Problem } {
    const at = (rel: string, any: boolean): { exists: boolean; problem?: Problem } => {
      const k = this.fs.kind(rel);
      if (k === 'symlink') return { exists: false, problem: problem('SYMLINK_NOT_FOLLOWED', `${rel} is a symlink: it is evidence, not followed`, rel) };
      return { exists: any ? k !== 'missing' : k === 'dir' };
    };
    switch (this.driver) {
      case 'aufs':
        // os.Lstat of aufs/layers/<id> (v1.9.1 aufs.go Exists): any kind of file counts.
        return { exists: this.fs.lstat(`aufs/layers/${id}`) !== undefined };
      case 'overlay':
        return at(`overlay/${id}`, true);
      case 'vfs':
        return at(`vfs/dir/${id}`, true);
      case 'btrfs':
        return at(`btrfs/subvolumes/${id}`, true);
      case 'devicemapper': {
        const r = readJson(this.fs, `devicemapper/metadata/${id}`, { max: LIMITS.meta });
        if (r === undefined) return { exists: false };
        if (!r.ok || !isObj(r.value))
          return {
            exists: false,
            problem: problem(
              r.ok ? 'LEGACY_JSON_TYPE' : (r.code ?? 'DEVMAPPER_METADATA_INVALID'),
              `devicemapper/metadata/${id} does not decode: 1.9 does not see this device`,
              `devicemapper/metadata/${id}`,
            ),
          };
        const dev = goField(r.value, 'device_id');
        if (typeof dev === 'number' && dev > 0xffffff)
          return {
            exists: false,
            problem: problem('DEVMAPPER_METADATA_INVALID', `device_id ${dev} is above 0xffffff: 1.9 ignores this device`, `devicemapper/metadata/${id}`),
          };
        return { exists: true };
      }
      case 'zfs':
        return { exists: true };
      default:
        return { exists: false };
    }
  }

  /** Every graph/<id> as graph.restore and graph.Get see it. */
  get images(): Map<string, LegacyImage> {
    return this.once('images', () => {
      const m = new Map<string, LegacyImage>();
      for (const name of this.fs.names(GRAPH_DIR)) {
        if (!HEX64.test(name)) continue;
        m.set(name, this.readImage(name));
      }
      return m;
    });
  }

  /** Names under graph/ that are not image IDs (`_tmp` is 1.9's staging directory). */
  get otherGraphEntries(): string[] {
    return this.fs.names(GRAPH_DIR).filter((n) => !HEX64.test(n));
  }

  private readImage(id: string): LegacyImage {
    const dir = `${GRAPH_DIR}/${id}`;
    const problems: Problem[] = [];
    const kind = this.fs.kind(dir);
    const files = { checksum: undefined as string | undefined, tarData: false, v1Compatibility: false, parentFile: false, migration: [] as string[] };
    const base = {
      id,
      dir,
      json: undefined,
      jsonId: id,
      parent: '',
      size: -1,
      created: undefined,
      driverExists: false,
      restored: false,
      gettable: false,
      files,
      problems,
    };
    if (kind !== 'dir') {
      problems.push(
        problem(
          kind === 'symlink' ? 'SYMLINK_NOT_FOLLOWED' : 'PATH_NOT_A_DIRECTORY',
          `${dir} is a ${kind}, not a directory: it is evidence, not followed`,
          dir,
        ),
      );
      return base;
    }
    const drv = this.driverHas(id);
    if (drv.problem !== undefined) problems.push(drv.problem);
    const img: LegacyImage = { ...base, driverExists: drv.exists };
    if (!drv.exists)
      problems.push(problem('LEGACY_LAYER_MISSING', `the ${this.driver} driver has no layer ${id}: dockerd 1.9 does not restore this image`, dir));

    const where = `${dir}/${GRAPH_FILES.json}`;
    const j = readJson(this.fs, where, { max: LIMITS.config });
    let ok = true;
    if (j === undefined) {
      problems.push(problem('LEGACY_IMAGE_JSON_MISSING', 'json is missing: dockerd 1.9 cannot load this image', where));
      ok = false;
    } else if (!j.ok) {
      problems.push(
        problem(
          j.code === undefined || j.code === 'JSON_TOO_DEEP' ? (j.code ?? 'LEGACY_IMAGE_JSON_INVALID') : j.code,
          `json cannot be read (${j.error}): dockerd 1.9 cannot load this image`,
          where,
        ),
      );
      ok = false;
    } else if (!isObj(j.value)) {
      problems.push(problem('LEGACY_IMAGE_JSON_INVALID', 'json is not a JSON object: dockerd 1.9 cannot load this image', where));
      ok = false;
    } else {
      const o = j.value;
      const before = problems.length;
      const jid = optString(o, 'id', problems, where);
      const parent = optString(o, 'parent', problems, where);
      for (const k of ['comment', 'container', 'docker_version', 'author', 'architecture', 'os']) optString(o, k, problems, where);
      img.created = optTime(o, 'created', problems, where);
      optObject(o, 'container_config', problems, where);
      optObject(o, 'config', problems, where);
      optInt(o, 'Size', problems, where);
      const parentId = optString(o, 'parent_id', problems, where);
      optString(o, 'layer_id', problems, where);
      if (problems.length > before) ok = false;
      img.json = o;
      img.jsonId = jid === undefined || jid === '' ? id : jid;
      img.parent = parent ?? '';
      if (img.parent === '' && parentId !== undefined && DIGEST_ANY.test(parentId)) img.parent = parentId.slice(parentId.indexOf(':') + 1);
      if (!HEX64.test(img.jsonId)) {
        problems.push(
          problem('LEGACY_IMAGE_ID_INVALID', `id ${JSON.stringify(img.jsonId.slice(0, 80))} is not 64 hex: dockerd 1.9 cannot load this image`, where),
        );
        ok = false;
      }
    }
    // The parent file (written when parent_id's hex differs from the v1 parent) wins, verbatim.
    const pf = readText(this.fs, `${dir}/${GRAPH_FILES.parent}`, { max: LIMITS.meta });
    if (pf.problem !== undefined) {
      problems.push(pf.problem);
      ok = false;
    } else if (pf.value !== undefined) {
      files.parentFile = true;
      if (pf.value.length > 0) img.parent = pf.value;
    }
    const ls = readText(this.fs, `${dir}/${GRAPH_FILES.layersize}`, { max: LIMITS.meta });
    if (ls.problem !== undefined) {
      problems.push(ls.problem);
      ok = false;
    } else if (ls.value === undefined) {
      problems.push(
        problem(
          'LEGACY_LAYERSIZE_MISSING',
          'layersize is missing: dockerd 1.9 computes it from the driver at first use (shown here as -1)',
          `${dir}/${GRAPH_FILES.layersize}`,
        ),
      );
    } else {
      const n = parseInt64(ls.value);
      if (n === undefined) {
        problems.push(
          problem(
            'LEGACY_LAYERSIZE_INVALID',
            `layersize ${JSON.stringify(ls.value.slice(0, 40))} is not a decimal integer (dockerd does not trim it): dockerd 1.9 cannot load this image`,
            `${dir}/${GRAPH_FILES.layersize}`,
          ),
        );
        ok = false;
      } else img.size = n;
    }
    const ck = readText(this.fs, `${dir}/${GRAPH_FILES.checksum}`, { max: LIMITS.meta });
    if (ck.problem !== undefined) problems.push(ck.problem);
    else files.checksum = ck.value;
    const fileKind = (name: string): boolean => {
      const k = this.fs.kind(`${dir}/${name}`);
      if (k !== 'missing' && k !== 'file')
        problems.push(problem(k === 'symlink' ? 'SYMLINK_NOT_FOLLOWED' : 'FILE_NOT_REGULAR', `${name} is a ${k}, not a file`, `${dir}/${name}`));
      return k === 'file';
    };
    files.tarData = fileKind(GRAPH_FILES.tarData);
    files.v1Compatibility = fileKind(GRAPH_FILES.v1Compatibility);
    files.migration = MIGRATION_FILES.filter((f) => this.fs.exists(`${dir}/${f}`));
    img.restored = drv.exists && ok;
    img.gettable = img.restored && img.jsonId === id;
    if (img.restored && !img.gettable)
      problems.push(
        problem('LEGACY_IMAGE_ID_MISMATCH', `json says id ${img.jsonId}: dockerd 1.9 fails to get it ("Image stored at '${id}' has wrong id")`, where),
      );
    return img;
  }

  /** IDs graph.restore registered (the truncindex), sorted. */
  get restoredIds(): string[] {
    return this.once('restoredIds', () =>
      [...this.images.values()]
        .filter((i) => i.restored)
        .map((i) => i.id)
        .sort(),
    );
  }

  /** graph.Get(name): a full restored ID or a unique prefix of one; the image must load with its own ID. */
  get(name: string): { image?: LegacyImage; error?: Problem } {
    if (name === '') return { error: problem('IMAGE_NOT_FOUND', "prefix can't be empty") };
    const hits = this.restoredIds.filter((id) => id.startsWith(name));
    if (hits.length > 1) return { error: problem('IMAGE_AMBIGUOUS', `Multiple IDs found with provided prefix: ${name}`) };
    if (hits.length === 0) return { error: problem('IMAGE_NOT_FOUND', `no such id: ${name}`) };
    const img = this.images.get(hits[0]!)!;
    if (!img.gettable) return { error: problem('LEGACY_IMAGE_ID_MISMATCH', `Image stored at '${img.id}' has wrong id '${img.jsonId}'`) };
    return { image: img };
  }

  /** The images graph.Map() lists: every image graph.Get returns. */
  get gettable(): LegacyImage[] {
    return this.once('gettable', () => [...this.images.values()].filter((i) => i.gettable));
  }

  /** graph.parentRefs: how many restored images name each parent (restore counts them all). */
  hasChildren(id: string): boolean {
    const refs = this.once('parentRefs', () => {
      const m = new Map<string, number>();
      for (const i of this.images.values()) if (i.restored) m.set(i.parent, (m.get(i.parent) ?? 0) + 1);
      return m;
    });
    return (refs.get(id) ?? 0) > 0;
  }

  /** graph.GetParent: the parent image, null for none, or the error 1.9 stops on. */
  parentOf(img: LegacyImage): { image: LegacyImage | null; error?: Problem } {
    if (img.parent === '') return { image: null };
    const r = this.get(img.parent);
    return r.image !== undefined
      ? { image: r.image }
      : {
          image: null,
          error: problem('IMAGE_PARENT_MISSING', `parent ${JSON.stringify(img.parent.slice(0, 80))} of ${img.id}: ${r.error?.message ?? 'not found'}`),
        };
  }

  /** graph.GetParentsSize: the layer sizes of every parent (0 past a missing one). Bounded against a cycle. */
  parentsSize(img: LegacyImage): number {
    let total = 0;
    let cur = this.parentOf(img).image;
    for (let i = 0; cur !== null && i < 1000; i++) {
      total += cur.size;
      cur = this.parentOf(cur).image;
    }
    return total;
  }

  /** TagStore.Repositories of repositories-<driver> (v1.9.1 graph/tags.go save/reload), entries in key order. */
  get repositories(): { refs: LegacyRef[]; problems: Problem[]; missing: boolean } {
    return this.once('repos', () => {
      const file = this.repositoriesFile;
      const problems: Problem[] = [];
      const r = readJson(this.fs, file, { max: LIMITS.repositories });
      if (r === undefined) return { refs: [], problems, missing: true };
      if (!r.ok)
        return {
          refs: [],
          problems: [problem(r.code ?? 'REPOSITORIES_INVALID', `${file} cannot be read (${r.error}): dockerd 1.9 does not start`, file)],
          missing: false,
        };
      const repos = isObj(r.value) ? goField(r.value, 'Repositories') : undefined;
      if (repos !== undefined && repos !== null && !isObj(repos))
        return {
          refs: [],
          problems: [problem('REPOSITORIES_INVALID', `${file}: Repositories is not an object: dockerd 1.9 does not start`, file)],
          missing: false,
        };
      const refs: LegacyRef[] = [];
      for (const repo of Object.keys((repos as Record<string, unknown> | null | undefined) ?? {}).sort()) {
        const tags = (repos as Record<string, unknown>)[repo];
        if (tags === null) continue;
        if (!isObj(tags)) {
          problems.push(problem('REPOSITORIES_INVALID', `${file}: repository ${JSON.stringify(repo)} is not an object: dockerd 1.9 does not start`, file));
          continue;
        }
        for (const ref of Object.keys(tags).sort()) {
          const id = tags[ref];
          if (typeof id !== 'string') {
            problems.push(problem('REPOSITORIES_INVALID', `${file}: ${repo} ${ref} is not a string: dockerd 1.9 does not start`, file));
            continue;
          }
          refs.push({ repo, ref, id });
        }
      }
      return { refs, problems, missing: false };
    });
  }

  /** TagStore.GetID (v1.9.1 graph/tags.go): the ID a name's repository and tag point to, or undefined. */
  tagId(name: string): string | undefined {
    const { repo, ref } = parseRepositoryTag19(name);
    const want = normalizeLocalName19(repo);
    return this.repositories.refs.find((r) => r.repo === want && r.ref === (ref === '' ? 'latest' : ref))?.id;
  }

  /** TagStore.LookupImage: repo[:tag|@digest] (tag latest by default), a short ID within the repo, else graph.Get(name). */
  lookupImage(name: string): { image?: LegacyImage; error?: Problem } {
    const { repo, ref } = parseRepositoryTag19(name);
    const want = normalizeLocalName19(repo);
    const inRepo = this.repositories.refs.filter((r) => r.repo === want);
    if (inRepo.length > 0) {
      const r = ref === '' ? 'latest' : ref;
      const hit = inRepo.find((x) => x.ref === r);
      if (hit !== undefined) {
        const g = this.get(hit.id);
        return g.image !== undefined ? g : { error: g.error ?? problem('IMAGE_NOT_FOUND', `No such image: ${name}`) };
      }
      // An ID of an image of the repository, if it looks like one (stringid.IsShortID(TruncateID(ref))).
      if (/^[a-f0-9]{12}$/.test(truncateId19(r))) {
        const byId = inRepo.find((x) => x.id.startsWith(r));
        if (byId !== undefined) return this.get(byId.id);
      }
    }
    const g = this.get(name);
    if (g.image !== undefined) return g;
    return {
      error:
        g.error?.code === 'IMAGE_AMBIGUOUS' || g.error?.code === 'LEGACY_IMAGE_ID_MISMATCH' ? g.error : problem('IMAGE_NOT_FOUND', `No such image: ${name}`),
    };
  }

  /** Every containers/<id> directory, as daemon.load reads it. */
  get containers(): LegacyContainer[] {
    return this.once('containers', () =>
      this.fs
        .names(L.containersDir)
        .filter((n) => HEX64.test(n))
        .map((id) => this.readContainer(id)),
    );
  }

  /** Names under containers/ that are not container IDs. */
  get otherContainerEntries(): string[] {
    return this.fs.names(L.containersDir).filter((n) => !HEX64.test(n));
  }

  private readContainer(id: string): LegacyContainer {
    const dir = `${L.containersDir}/${id}`;
    const problems: Problem[] = [];
    const o = { max: LIMITS.objectJson };
    const where = `${dir}/config.json`;
    const c = readJson(this.fs, where, o);
    let config: Record<string, unknown> | undefined;
    let loaded = true;
    if (c === undefined) {
      problems.push(problem('CONTAINER_CONFIG_MISSING', 'config.json is missing: dockerd 1.9 skips this container', where));
      loaded = false;
    } else if (!c.ok) {
      problems.push(
        problem(
          c.code === 'JSON_TOO_DEEP' || c.code?.startsWith('SYMLINK') || c.code === 'FILE_NOT_REGULAR' || c.code === 'FILE_TOO_LARGE'
            ? c.code
            : 'CONTAINER_CONFIG_INVALID',
          `config.json cannot be read (${c.error}): dockerd 1.9 skips this container`,
          where,
        ),
      );
      loaded = false;
    } else if (!isObj(c.value)) {
      problems.push(problem('CONTAINER_CONFIG_INVALID', 'config.json is not a JSON object: dockerd 1.9 skips this container', where));
      loaded = false;
    } else {
      config = c.value;
      const before = problems.length;
      const cid = optString(config, 'ID', problems, where);
      optTime(config, 'Created', problems, where);
      for (const k of [
        'Path',
        'Image',
        'LogPath',
        'Name',
        'Driver',
        'ExecDriver',
        'MountLabel',
        'ProcessLabel',
        'AppArmorProfile',
        'HostnamePath',
        'HostsPath',
        'ShmPath',
        'MqueuePath',
        'ResolvConfPath',
      ])
        optString(config, k, problems, where);
      optObject(config, 'State', problems, where);
      optObject(config, 'Config', problems, where);
      optObject(config, 'NetworkSettings', problems, where);
      optInt(config, 'RestartCount', problems, where);
      const st = goField(config, 'State');
      if (isObj(st)) {
        optTime(st, 'StartedAt', problems, where);
        optTime(st, 'FinishedAt', problems, where);
        optInt(st, 'Pid', problems, where);
        optInt(st, 'ExitCode', problems, where);
      }
      if (problems.length > before) {
        problems.push(problem('CONTAINER_CONFIG_INVALID', 'config.json does not decode as a 1.9 container: dockerd 1.9 skips this container', where));
        loaded = false;
      }
      if (cid !== undefined && cid !== id) {
        problems.push(
          problem(
            'CONTAINER_ID_MISMATCH',
            `config.json says ID ${JSON.stringify(cid.slice(0, 80))}: dockerd 1.9 skips it ("Container ${cid.slice(0, 80)} is stored at ${id}")`,
            where,
          ),
        );
        loaded = false;
      }
    }
    const hwhere = `${dir}/hostconfig.json`;
    const h = readJson(this.fs, hwhere, o);
    let hostConfig: Record<string, unknown> | undefined;
    if (h !== undefined) {
      if (!h.ok) {
        problems.push(problem('CONTAINER_HOSTCONFIG_INVALID', `hostconfig.json cannot be read (${h.error}): dockerd 1.9 skips this container`, hwhere));
        loaded = false;
      } else if (!isObj(h.value)) {
        problems.push(problem('CONTAINER_HOSTCONFIG_INVALID', 'hostconfig.json is not a JSON object: dockerd 1.9 skips this container', hwhere));
        loaded = false;
      } else hostConfig = h.value;
    }
    const drv = config === undefined ? undefined : goField(config, 'Driver');
    const d = typeof drv === 'string' ? drv : '';
    const driverMatch = (d === '' && this.driver === 'aufs') || d === this.driver;
    return { id, dir, config, hostConfig, hostConfigFile: h !== undefined, loaded, driverMatch, migrated: this.fs.exists(`${dir}/config.v2.json`), problems };
  }

  /** The containers daemon.restore registers, newest first (contStore.List sorts by Created). */
  get registered(): LegacyContainer[] {
    return this.once('registered', () =>
      this.containers.filter((c) => c.loaded && c.driverMatch).sort((a, b) => createdNs(b.config) - createdNs(a.config) || (a.id < b.id ? -1 : 1)),
    );
  }

  /** daemon.Get (v1.9.1 daemon/daemon.go:136): full ID, then a name path of linkgraph.db, then a unique ID prefix. */
  lookupContainer(q: string): { container?: LegacyContainer; error?: Problem } {
    const reg = this.registered;
    const byId = reg.find((c) => c.id === q);
    if (byId !== undefined) return { container: byId };
    if (q !== '') {
      const entity = this.links.get(q.startsWith('/') ? q : `/${q}`);
      const byName = entity === undefined ? undefined : reg.find((c) => c.id === entity);
      if (byName !== undefined) return { container: byName };
      const hits = reg.filter((c) => c.id.startsWith(q));
      if (hits.length === 1) return { container: hits[0]! };
      if (hits.length > 1) return { error: problem('CONTAINER_AMBIGUOUS', `Multiple IDs found with provided prefix: ${q}`) };
    }
    return { error: problem('CONTAINER_NOT_FOUND', `no such id: ${q}`) };
  }
}

function createdNs(c: Record<string, unknown> | undefined): number {
  const v = c === undefined ? undefined : goField(c, 'Created');
  const t = typeof v === 'string' ? parseGoTime(v) : undefined;
  return t === undefined ? -62135596800e9 : t.unix * 1e9 + t.nanos;
}

/** For an archive root: the data-root path read back from the containers' stored paths, else /var/lib/docker. */
function archiveRootOf(fs: Confined): string {
  for (const id of fs.names(L.containersDir).filter((n) => HEX64.test(n))) {
    const r = readJson(fs, `${L.containersDir}/${id}/config.json`, { max: LIMITS.objectJson });
    if (r === undefined || !r.ok || !isObj(r.value)) continue;
    for (const k of ['ResolvConfPath', 'HostsPath', 'HostnamePath', 'LogPath']) {
      const p = goField(r.value, k);
      const m = typeof p !== 'string' ? null : /^(\/[^\0]*)\/containers\/([a-f0-9]{64})\//.exec(p);
      if (m !== null && m[2] === id) return m[1]!;
    }
  }
  return '/var/lib/docker';
}
