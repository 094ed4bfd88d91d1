import { sha256Digest, chainId, DIGEST_RE } from '../formats/digest/digest.js';
import { parseReference, type Reference } from '../formats/docker/reference.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { DatarootError } from '../formats/errors.js';
import { LIMITS, type Confined } from '../io/confined.js';
import { HEX64, LAYOUT as L } from './layout.js';
import { problem, type Problem } from './problems.js';
import { metaText, readBytes, readText } from './fsread.js';

/** The parts of an image config dataroot reads (the rest is passed through). */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  'os.version'?: string;
  created?: string;
  author?: string;
  comment?: string;
  docker_version?: string;
  container?: string;
  container_config?: Record<string, unknown>;
  config?: Record<string, unknown> | null;
  rootfs?: { type?: string; diff_ids?: unknown };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean; author?: string }[];
  parent?: string;
}

export interface ImageRecord {
  /** `sha256:<hex>` */
  id: string;
  hex: string;
  contentPath: string;
  /** Exact config bytes. */
  bytes: Buffer | undefined;
  config: ImageConfig | undefined;
  diffIds: string[];
  chainId: string | undefined;
  /** metadata/…/parent as stored (not trimmed, as dockerd reads it). */
  parent: string | undefined;
  /** metadata/…/lastUpdated as stored. */
  lastUpdated: string | undefined;
  builtLocally: boolean;
  problems: Problem[];
}

export interface RefEntry extends Reference {
  /** The image ID the reference points to. */
  id: string;
  /** The outer key it is stored under. */
  repo: string;
}

export interface Repositories {
  refs: RefEntry[];
  problems: Problem[];
  /** The file is missing (dockerd creates an empty one at start). */
  missing: boolean;
}

export function readRepositories(fs: Confined, driver: string): Repositories {
  const path = L.repositories(driver);
  const r = readText(fs, path, { max: LIMITS.repositories, what: 'repositories.json' });
  if (r.problem !== undefined)
    return { refs: [], missing: false, problems: [problem(r.problem.code, `repositories.json: ${r.problem.message}: dockerd refuses to start with it`, path)] };
  const text = r.value;
  if (text === undefined) return { refs: [], problems: [], missing: true };
  let doc: unknown;
  try {
    doc = parseJsonBounded(text);
  } catch (e) {
    if (e instanceof DatarootError)
      return { refs: [], missing: false, problems: [problem(e.code, `repositories.json: ${e.message}; dockerd refuses to start with it`, path)] };
    return {
      refs: [],
      missing: false,
      problems: [problem('REPOSITORIES_INVALID', `repositories.json is not valid JSON (${(e as Error).message}); dockerd refuses to start with it`, path)],
    };
  }
  const repos = (doc as { Repositories?: unknown })?.Repositories;
  if (repos === null || typeof repos !== 'object') {
    return { refs: [], missing: false, problems: [problem('REPOSITORIES_INVALID', 'repositories.json has no "Repositories" object', path)] };
  }
  const refs: RefEntry[] = [];
  const problems: Problem[] = [];
  for (const [repo, inner] of Object.entries(repos as Record<string, unknown>)) {
    if (inner === null || typeof inner !== 'object') {
      problems.push(problem('REPOSITORIES_INVALID', `repository "${repo}" is not an object`, path));
      continue;
    }
    for (const [key, id] of Object.entries(inner as Record<string, unknown>)) {
      const ref = parseReference(key);
      if (ref === undefined || typeof id !== 'string' || !DIGEST_RE.test(id)) {
        problems.push(problem('REPOSITORIES_INVALID', `reference "${key}" → ${JSON.stringify(id)} is not a reference to an image ID`, path));
        continue;
      }
      refs.push({ ...ref, id, repo });
    }
  }
  return { refs, problems, missing: false };
}

function validDiffIds(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((d) => typeof d === 'string' && DIGEST_RE.test(d));
}

export function readImage(fs: Confined, driver: string, hex: string): ImageRecord {
  const contentPath = `${L.imageContentDir(driver)}/${hex}`;
  const id = `sha256:${hex}`;
  const problems: Problem[] = [];
  const read = readBytes(fs, contentPath, { max: LIMITS.config, what: 'image config' });
  const bytes = read.value;
  let config: ImageConfig | undefined;
  let diffIds: string[] = [];
  if (bytes === undefined)
    problems.push(
      problem(
        'IMAGE_CONFIG_INVALID',
        `image config cannot be read${read.problem !== undefined ? `: ${read.problem.message} (${read.problem.code})` : ''}`,
        contentPath,
      ),
    );
  else {
    const actual = sha256Digest(bytes);
    if (actual !== id)
      problems.push(problem('IMAGE_ID_MISMATCH', `sha256 of the config is ${actual}, not ${id}: dockerd skips it ("failed to verify")`, contentPath));
    try {
      config = parseJsonBounded(bytes.toString('utf8')) as ImageConfig;
      if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error('not an object');
      const d = config.rootfs?.diff_ids;
      if (config.rootfs === undefined) problems.push(problem('IMAGE_CONFIG_INVALID', 'config has no rootfs: dockerd rejects it', contentPath));
      else if (d !== undefined && d !== null && !validDiffIds(d))
        problems.push(problem('IMAGE_CONFIG_INVALID', 'rootfs.diff_ids is not a list of sha256 digests', contentPath));
      else diffIds = d ?? [];
    } catch (e) {
      config = undefined;
      problems.push(
        problem(e instanceof DatarootError ? e.code : 'IMAGE_CONFIG_INVALID', `config is not a JSON object (${(e as Error).message})`, contentPath),
      );
    }
  }
  const meta = `${L.imageMetadataDir(driver)}/${hex}`;
  return {
    id,
    hex,
    contentPath,
    bytes,
    config,
    diffIds,
    chainId: chainId(diffIds),
    parent: metaText(fs, `${meta}/parent`, LIMITS.meta, problems),
    lastUpdated: metaText(fs, `${meta}/lastUpdated`, LIMITS.meta, problems),
    builtLocally: metaText(fs, `${meta}/builtLocally`, LIMITS.meta, problems)?.charCodeAt(0) === 1,
    problems,
  };
}

/** Every image config dockerd would try to load (names that are 64-hex digests). */
export function readImages(fs: Confined, driver: string): ImageRecord[] {
  return fs
    .names(L.imageContentDir(driver))
    .filter((n) => HEX64.test(n))
    .map((hex) => readImage(fs, driver, hex));
}
