import { createHash } from 'node:crypto';
import { checkBolt } from '../formats/bolt/check.js';
import { parseGoTime } from '../formats/docker/gotime.js';
import { DatarootError } from '../formats/errors.js';
import { decodeEntries, type Entry, type FileEntry } from '../formats/tarsplit/entries.js';
import { assemble, type AssembleIssue } from '../formats/tarsplit/stream.js';
import { LIMITS, symlinkTargetInside, type Confined } from '../io/confined.js';
import { openBoltIn } from '../store/bolt.js';
import { metaText } from '../store/fsread.js';
import { LINK_ID, LINK_TARGET, LOWER_ENTRY, BUILDKIT_ID } from '../store/ids.js';
import type { LayerRecord } from '../store/layers.js';
import { expectedChainId } from '../store/layers.js';
import type { Store } from '../store/model.js';
import type { Problem } from '../store/problems.js';
import { listFiles } from './files.js';
import { layerContentDir, layerFileSource, layerPath, tarSplitStream } from './layers.js';
import { findLeftovers } from './leftovers.js';
import { severityOf, type ErrorCode, type Severity } from '../formats/errorcodes.js';

export type { Severity } from '../formats/errorcodes.js';

/** One finding: a stable code, what dockerd does about it, and what to do. */
export interface Finding {
  code: ErrorCode;
  severity: Severity;
  /** The image, layer, container or file the finding is about. */
  subject: string;
  message: string;
  paths: string[];
  fix: string;
}

export interface VerifyOptions {
  deep: boolean;
  /** Only these images (and their layers). */
  images?: string[];
  onProgress?: (p: { layer: number; layers: number; bytes: number; totalBytes: number }) => void;
}

export interface VerifyResult {
  root: string;
  driver: string;
  deep: boolean;
  checked: { images: number; layers: number; containers: number; boltFiles: number; layerBytes: number };
  findings: Finding[];
  errors: number;
  warnings: number;
}

/** Codes of the confined access layer: evidence that tries to lead a reader out of the root or to block it. */
export const CONFINEMENT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'SYMLINK_OUT_OF_ROOT',
  'SYMLINK_NOT_FOLLOWED',
  'FILE_NOT_REGULAR',
  'FILE_TOO_LARGE',
  'PATH_NOT_A_DIRECTORY',
  'ID_INVALID',
  'JSON_TOO_DEEP',
  'PATH_INVALID',
]);

const FIX: Partial<Record<ErrorCode, string>> = {
  IMAGE_ID_MISMATCH: 'restore the original config bytes (the ID is their sha256), or remove the image with its tags and metadata',
  IMAGE_CONFIG_INVALID: 'restore the config from a backup or re-load the image (docker load / dataroot inject)',
  IMAGE_PARENT_MISSING: 'remove imagedb/metadata/sha256/<id>/parent, or restore the parent image',
  IMAGE_LASTUPDATED_INVALID: 'rewrite lastUpdated as an RFC 3339 time without a trailing newline, or remove it',
  IMAGE_OS_UNSUPPORTED: 'nothing on this host: the image is for another operating system',
  LAYER_CHAIN_MISSING: 're-load the image (docker load / dataroot inject) so its layers are registered again',
  TAG_DANGLING: 'remove the reference from repositories.json (the CLI cannot: docker rmi says "No such image"), or restore the image',
  TAG_NOT_FAMILIAR: 'rewrite the key in familiar form (library images without docker.io/library/)',
  REPOSITORIES_INVALID: 'restore repositories.json from a backup, or rebuild it from the images (dataroot can list them)',
  LAYER_METADATA_INVALID: 'restore the file (diff and size hold no trailing newline), or re-load the images that use the layer',
  LAYER_CHAINID_MISMATCH: 're-load the images that use the layer; the directory name must be the chainID of parent and diff',
  LAYER_DIR_MISSING: 're-load the images that use the layer (the driver directory holds its files)',
  TARSPLIT_MISSING: 're-load the images that use the layer; without tar-split docker save and push cannot rebuild it',
  TARSPLIT_INVALID: 're-load the images that use the layer',
  TARSPLIT_PATH_ESCAPE: 'remove the layer: its tar-split names a file outside the layer (a hostile layer)',
  LAYER_DIFFID_MISMATCH: 're-load the images that use the layer from a trusted source',
  LAYER_FILE_MODIFIED: 'restore the file, or re-load the images that use the layer from a trusted source',
  LAYER_FILE_MISSING: 'restore the file, or re-load the images that use the layer',
  LAYER_FILE_ADDED: 'remove the file from the layer directory, or re-load the images that use the layer',
  LAYER_SIZE_MISMATCH: 'informational: dockerd shows the recorded size; re-load the image to record the real one',
  OVERLAY_LINK_BROKEN: "recreate l/<link> -> ../<cache-id>/diff from the layer's link file",
  OVERLAY_LOWER_INVALID: "rewrite the lower file from the parent layers' link files (nearest first)",
  CONTAINER_IMAGE_MISSING: 'restore or re-load the image the container was created from',
  CONTAINER_LAYER_MISSING: 'remove the container (docker rm) or restore its layer directories',
  CONTAINER_CONFIG_INVALID: 'restore config.v2.json from a backup, or remove the container directory',
  CONTAINER_OTHER_DRIVER: "informational: the container belongs to another driver's store (a host that changed --storage-driver)",
  ORPHAN_LAYER: 'harmless; dataroot gc removes it',
  ORPHAN_DRIVER_DIR: 'harmless; dataroot gc removes it',
  ORPHAN_IMAGE_METADATA: 'harmless; dataroot gc removes it',
  ORPHAN_CONTAINER_LAYER: 'harmless; dataroot gc removes it',
  STAGING_LEFTOVER: 'left by an interrupted write; dataroot gc removes it',
  BOLT_CORRUPT: 'restore the file from a backup; dockerd may fail to start or lose the records on those pages',
  SYMLINK_OUT_OF_ROOT:
    'treat the root as tampered: a symlink where dockerd keeps a file or directory leads outside the root; remove it and restore the original',
  SYMLINK_NOT_FOLLOWED: 'treat the root as tampered: dockerd keeps no symlink there; replace it with the file or directory it stands for',
  FILE_NOT_REGULAR: 'treat the root as tampered: a FIFO, device, socket or directory stands where dockerd keeps a regular file',
  FILE_TOO_LARGE: 'treat the root as tampered (or restore the file): it is larger than any such file dockerd writes',
  PATH_NOT_A_DIRECTORY: 'restore the directory: something else stands where dockerd keeps one',
  ID_INVALID: 'treat the root as tampered: an ID that is not of its format (such as ../) was never used as a path; restore the file',
  JSON_TOO_DEEP: 'treat the root as tampered: dockerd never writes JSON nested that deep',
};

class Findings {
  readonly list: Finding[] = [];
  add(code: ErrorCode, subject: string, message: string, ...paths: string[]): void {
    this.list.push({ code, severity: severityOf(code), subject, message, paths, fix: FIX[code] ?? '' });
  }
}

/** Every layer a set of images uses (each prefix of each chain). */
function chainsOf(store: Store, ids: string[]): Set<string> {
  const s = new Set<string>();
  for (const id of ids) {
    const img = store.images.get(id);
    if (img !== undefined) for (const c of store.chainOf(img)) s.add(c);
  }
  return s;
}

/** Checks that need no layer content: metadata, references, links, orphans, containers, BoltDB. */
function shallow(store: Store, f: Findings, only: Set<string> | undefined): void {
  checkImages(store, f, only);
  checkReferences(store, f, only);
  checkLayers(store, f, only);
  if (only !== undefined) return;
  // Leftovers and orphans (what gc removes).
  for (const x of findLeftovers(store)) f.add(x.code, x.subject, x.message, store.shown(x.path));
  checkContainers(store, f);
  checkBoltFiles(store, f);
}

/** Image configs: readable, for this OS, their metadata parent, lastUpdated and layer chain. */
function checkImages(store: Store, f: Findings, only: Set<string> | undefined): void {
  const L = store.L;
  const d = store.driver;
  const shown = (p: string): string => store.shown(p);
  for (const img of store.images.values()) {
    if (only !== undefined && !only.has(img.id)) continue;
    for (const p of img.problems) {
      if (p.code === 'IMAGE_ID_MISMATCH') f.add('IMAGE_ID_MISMATCH', img.id, `${p.message}`, shown(img.contentPath));
      else if (CONFINEMENT_CODES.has(p.code)) f.add(p.code, img.id, p.message, shown(p.path ?? img.contentPath));
      else f.add('IMAGE_CONFIG_INVALID', img.id, `${p.message}: dockerd skips the image at start ("invalid image")`, shown(img.contentPath));
    }
    if (img.config === undefined || img.problems.length > 0) continue;
    const os = img.config.os;
    if (os !== undefined && os !== '' && os !== 'linux')
      f.add('IMAGE_OS_UNSUPPORTED', img.id, `the image is for ${os}: dockerd on Linux skips it`, shown(img.contentPath));
    if (img.parent !== undefined && !store.images.has(img.parent)) {
      f.add(
        'IMAGE_PARENT_MISSING',
        img.id,
        `metadata parent ${JSON.stringify(img.parent.slice(0, 100))} is not an image here: docker history shows <missing> rows and the image is not hidden as an intermediate`,
        shown(`${L.imageMetadataDir(d)}/${img.hex}/parent`),
      );
    }
    if (img.lastUpdated !== undefined && parseGoTime(img.lastUpdated) === undefined) {
      f.add(
        'IMAGE_LASTUPDATED_INVALID',
        img.id,
        `lastUpdated ${JSON.stringify(img.lastUpdated.slice(0, 100))} is not an RFC 3339 time: docker image inspect fails on this image ("extra text")`,
        shown(`${L.imageMetadataDir(d)}/${img.hex}/lastUpdated`),
      );
    }
    if (img.chainId !== undefined && !store.isLoadable(img.chainId)) {
      const why = store.loadable.get(img.chainId) ?? `layer ${img.chainId} does not exist`;
      f.add(
        'LAYER_CHAIN_MISSING',
        img.id,
        `the image's layer chain does not load (${why}): dockerd skips the image at start ("layer does not exist, not restoring image"), yet its tags still resolve to it`,
        shown(img.contentPath),
      );
    }
  }
}

/** repositories.json: readable, every tag pointing to an image here, in familiar form. */
function checkReferences(store: Store, f: Findings, only: Set<string> | undefined): void {
  const L = store.L;
  const d = store.driver;
  const shown = (p: string): string => store.shown(p);
  const repos = store.repositories;
  for (const p of repos.problems) {
    f.add(
      CONFINEMENT_CODES.has(p.code) ? p.code : 'REPOSITORIES_INVALID',
      'repositories.json',
      p.message.includes('dockerd') ? p.message : `${p.message}: dockerd drops or cannot resolve it`,
      shown(L.repositories(d)),
    );
  }
  for (const r of repos.refs) {
    if (only !== undefined && !only.has(r.id)) continue;
    if (!store.images.has(r.id))
      f.add(
        'TAG_DANGLING',
        r.familiar,
        `${r.familiar} points to ${r.id}, which is not in the image store: docker images hides it, docker run tries to pull, docker rmi says "No such image"`,
        shown(L.repositories(d)),
      );
    // Both keys must be familiar: the outer one is looked up by FamiliarName, the inner one by FamiliarString.
    const rawName = r.familiar.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
    if (r.repo !== r.name || rawName !== r.name) {
      f.add(
        'TAG_NOT_FAMILIAR',
        r.familiar,
        `"${r.repo}" → "${r.familiar}" is not in familiar form (${r.name}): docker images lists it, but docker image inspect and docker run cannot resolve it`,
        shown(L.repositories(d)),
      );
    }
  }
}

/** layerdb: metadata, chainIDs, driver directories, tar-split, and overlay2's links. */
function checkLayers(store: Store, f: Findings, only: Set<string> | undefined): void {
  const d = store.driver;
  const shown = (p: string): string => store.shown(p);
  const scope = only === undefined ? undefined : chainsOf(store, [...only]);
  for (const l of store.layers.values()) {
    if (scope !== undefined && !scope.has(l.chainId)) continue;
    for (const p of l.problems) f.add(CONFINEMENT_CODES.has(p.code) ? p.code : 'LAYER_METADATA_INVALID', l.chainId, `${p.message}`, shown(p.path ?? l.dir));
    const want = expectedChainId(l);
    if (want !== undefined && want !== l.chainId && l.problems.length === 0) {
      f.add(
        'LAYER_CHAINID_MISMATCH',
        l.chainId,
        `the directory is named ${l.chainId} but sha256(parent + " " + diff) is ${want}: images that name this chain get other content`,
        shown(l.dir),
      );
    }
    if (l.cacheId !== undefined && !l.driverDirExists) {
      f.add(
        'LAYER_DIR_MISSING',
        l.chainId,
        `cache-id ${l.cacheId} has no driver directory: the image is listed but creating a container fails ("no such file or directory")`,
        shown(l.driverDir ?? l.dir),
      );
    }
    if (!l.tarSplit && l.problems.length === 0) {
      f.add(
        'TARSPLIT_MISSING',
        l.chainId,
        'tar-split.json.gz is missing: the image runs, but docker save and docker push fail ("no such file or directory")',
        shown(`${l.dir}/tar-split.json.gz`),
      );
    }
    if (l.cacheId !== undefined && l.driverDirExists && store.adapter.content !== 'none') {
      const content = store.adapter.contentDir(store.fs, l.cacheId);
      // undefined: the driver keeps the files where they cannot be read offline (an unmounted zfs dataset)
      const k = content === undefined ? 'dir' : store.fs.kind(content);
      if (k === 'symlink') {
        const target = store.fs.readlink(content!) ?? '';
        const code = symlinkTargetInside(content!, target) === undefined ? 'SYMLINK_OUT_OF_ROOT' : 'SYMLINK_NOT_FOLLOWED';
        f.add(
          code,
          l.chainId,
          `the layer's files ${content} are a symlink to ${JSON.stringify(target)}: never followed; containers and docker save would read another tree`,
          shown(content!),
        );
      } else if (k !== 'dir' && k !== 'missing')
        f.add('PATH_NOT_A_DIRECTORY', l.chainId, `the layer's files ${content} are a ${k}, not a directory`, shown(content!));
      else if (k === 'missing') f.add('LAYER_DIR_MISSING', l.chainId, `${content} is missing: containers would see nothing of this layer`, shown(content!));
    }
    if ((d === 'overlay2' || d === 'fuse-overlayfs') && l.cacheId !== undefined && l.driverDirExists) overlayLinks(store, l, f);
  }
}

/** Containers: config.v2.json, driver, image, read-write and init layers; and every mount the layer store loads. */
function checkContainers(store: Store, f: Findings): void {
  const L = store.L;
  const d = store.driver;
  const shown = (p: string): string => store.shown(p);
  const mountsSeen = new Set<string>();
  for (const c of store.containers) {
    for (const p of c.problems) {
      if (p.code === 'CONTAINER_CONFIG_MISSING' || p.code === 'CONTAINER_CONFIG_INVALID')
        f.add('CONTAINER_CONFIG_INVALID', c.id, `${p.message}`, shown(p.path ?? c.dir));
      else if (CONFINEMENT_CODES.has(p.code)) f.add(p.code, c.id, p.message, shown(p.path ?? c.dir));
    }
    const cfg = c.config;
    if (cfg === undefined) continue;
    const driver = typeof cfg.Driver === 'string' ? cfg.Driver : '';
    if (driver !== d && !(driver === '' && d === 'aufs')) {
      f.add(
        'CONTAINER_OTHER_DRIVER',
        c.id,
        `${cfg.Name ?? c.id} was made on the ${driver === '' ? 'aufs' : driver} driver: dockerd on ${d} does not load it (verify --driver ${driver === '' ? 'aufs' : driver} checks it)`,
        shown(`${c.dir}/config.v2.json`),
      );
      continue;
    }
    if (cfg.Image !== undefined && cfg.Image !== '' && !store.images.has(cfg.Image)) {
      f.add(
        'CONTAINER_IMAGE_MISSING',
        c.id,
        `${cfg.Name ?? c.id} was created from ${cfg.Image}, which is gone: docker ps shows the ID, the container still starts from its layers`,
        shown(`${c.dir}/config.v2.json`),
      );
    }
    const m = store.mountOf(c.id);
    mountsSeen.add(c.id);
    for (const p of m?.problems ?? []) if (CONFINEMENT_CODES.has(p.code)) f.add(p.code, c.id, p.message, shown(p.path ?? c.dir));
    if (m?.problems.some((p) => p.code === 'ID_INVALID') === true) continue;
    if (m === undefined || m.mountId === undefined)
      f.add(
        'CONTAINER_LAYER_MISSING',
        c.id,
        `${cfg.Name ?? c.id} has no read-write layer (layerdb/mounts/${c.id}): dockerd cannot mount it, starting it fails`,
        shown(`${L.mountsDir(d)}/${c.id}`),
      );
    else {
      for (const dir of [m.mountId, ...(m.initId !== undefined ? [m.initId] : [])]) {
        const p = store.adapter.layerDir(dir);
        const k = store.fs.kind(p);
        if (k === 'missing') f.add('CONTAINER_LAYER_MISSING', c.id, `${cfg.Name ?? c.id}: the driver directory ${dir} is missing: starting it fails`, shown(p));
        else if (k === 'symlink')
          f.add(
            symlinkTargetInside(p, store.fs.readlink(p) ?? '') === undefined ? 'SYMLINK_OUT_OF_ROOT' : 'SYMLINK_NOT_FOLLOWED',
            c.id,
            `the container's layer directory ${p} is a symlink: never followed`,
            shown(p),
          );
        else if (k !== store.adapter.layerDirKind)
          f.add(
            store.adapter.layerDirKind === 'dir' ? 'PATH_NOT_A_DIRECTORY' : 'FILE_NOT_REGULAR',
            c.id,
            `the container's layer ${store.adapter.layerDirKind === 'dir' ? 'directory' : 'metadata'} ${p} is a ${k}, not a ${store.adapter.layerDirKind === 'dir' ? 'directory' : 'file'}: starting it fails`,
            shown(p),
          );
        else if (d === 'overlay2' || d === 'fuse-overlayfs') overlayOwnFiles(store, dir, c.id, f, dir !== m.mountId);
      }
      if (store.adapter.content !== 'none') {
        const view = store.adapter.viewDirs(store.fs, m.mountId);
        for (const p of view.problems) f.add(CONFINEMENT_CODES.has(p.code) ? p.code : p.code, c.id, p.message, shown(p.path ?? c.dir));
        const top = view.dirs[0];
        const tk = top === undefined ? 'dir' : store.fs.kind(top);
        if (tk === 'symlink')
          f.add(
            symlinkTargetInside(top!, store.fs.readlink(top!) ?? '') === undefined ? 'SYMLINK_OUT_OF_ROOT' : 'SYMLINK_NOT_FOLLOWED',
            c.id,
            `the container's files ${top} are a symlink: never followed`,
            shown(top!),
          );
        else if (tk !== 'dir' && tk !== 'missing')
          f.add('PATH_NOT_A_DIRECTORY', c.id, `the container's files ${top} are a ${tk}, not a directory: starting it fails`, shown(top!));
      }
      if (m.parent !== undefined && !store.isLoadable(m.parent))
        f.add(
          'CONTAINER_LAYER_MISSING',
          c.id,
          `${cfg.Name ?? c.id} sits on layer ${m.parent}, which does not load: dockerd skips its layer and cannot start it`,
          shown(`${L.mountsDir(d)}/${c.id}/parent`),
        );
    }
  }
  // The layer store loads every mount at start, whatever its container: an invalid ID there is a
  // finding even when no container of this driver uses it (docker rm and prune remove by it).
  for (const m of store.mounts) {
    if (mountsSeen.has(m.containerId)) continue;
    for (const p of m.problems)
      if (CONFINEMENT_CODES.has(p.code)) f.add(p.code, m.containerId, p.message, shown(p.path ?? `${L.mountsDir(d)}/${m.containerId}`));
  }
}

/** BoltDB files, found by their magic, through bbolt's check. */
function checkBoltFiles(store: Store, f: Findings): void {
  const shown = (p: string): string => store.shown(p);
  for (const file of boltFiles(store)) {
    const abs = file.path;
    try {
      const b = openBoltIn(store.fs, file.path);
      if (b !== undefined)
        try {
          const problems = checkBolt(b.db);
          if (problems.length > 0) {
            const pages = [...new Set(problems.map((p) => p.page).filter((p) => p !== undefined))].slice(0, 20);
            f.add(
              'BOLT_CORRUPT',
              file.path,
              `${problems.length} errors found by bbolt's check (pages ${pages.join(', ')}): ${problems[0]!.message}`,
              shown(abs),
            );
          }
        } finally {
          b.close();
        }
    } catch (e) {
      f.add('BOLT_CORRUPT', file.path, e instanceof DatarootError ? e.oneLine() : String(e), shown(abs));
    }
  }
}

/** overlay2: the layer's link file and l/ symlink, and its lower file against the parents' links. */
function overlayLinks(store: Store, l: LayerRecord, f: Findings): void {
  const home = store.driver;
  const fs = store.fs;
  const dir = `${home}/${l.cacheId!}`;
  const meta = (rel: string): string | undefined => metaText(fs, rel, LIMITS.meta, []);
  const link = meta(`${dir}/link`);
  if (link === undefined || !LINK_ID.test(link)) {
    f.add(
      'OVERLAY_LINK_BROKEN',
      l.chainId,
      `${l.cacheId}/link is ${link === undefined ? 'missing' : `not a 26-character link id (${JSON.stringify(link.slice(0, 80))})`}: layers above cannot name it in their lower`,
      store.shown(`${dir}/link`),
    );
  } else {
    const target = fs.readlink(`${home}/l/${link}`);
    if (target === undefined)
      f.add(
        'OVERLAY_LINK_BROKEN',
        l.chainId,
        `l/${link} is missing: mounting any layer or container above it fails, so docker run fails`,
        store.shown(`${home}/l/${link}`),
      );
    else if (target !== `../${l.cacheId}/diff`) {
      const out = symlinkTargetInside(`${home}/l/${link}`, target) === undefined;
      f.add(
        out ? 'SYMLINK_OUT_OF_ROOT' : 'OVERLAY_LINK_BROKEN',
        l.chainId,
        `l/${link} points to ${JSON.stringify(target)}, not ../${l.cacheId}/diff: containers would see another ${out ? 'tree, outside the root' : "layer's files"}`,
        store.shown(`${home}/l/${link}`),
      );
    }
  }
  // lower = "l/<parent link>:<parent's lower>", nearest first; a base layer has none.
  const lower = meta(`${dir}/lower`);
  let expected: string | undefined = '';
  const parts: string[] = [];
  for (let p = l.parent, i = 0; p !== undefined && i < 200; p = store.layers.get(p)?.parent, i++) {
    const pl = store.layers.get(p);
    const plink = pl?.cacheId === undefined ? undefined : meta(`${home}/${pl.cacheId}/link`);
    if (plink === undefined) {
      expected = undefined;
      break;
    }
    parts.push(`l/${plink}`);
  }
  if (expected !== undefined) expected = parts.join(':');
  if (expected === undefined) return;
  if ((lower ?? '') !== expected) {
    f.add(
      'OVERLAY_LOWER_INVALID',
      l.chainId,
      `${l.cacheId}/lower is ${lower === undefined ? 'missing' : JSON.stringify(lower.slice(0, 200))} but the parent layers' links give ${JSON.stringify(expected)}: the mount shows the wrong lower layers or fails`,
      store.shown(`${dir}/lower`),
    );
  }
}

/**
 * overlay2: the link and lower files of a container's layer or its init layer. dockerd reads them
 * to mount the layer, and `docker rm` removes l/<link> by whatever the link file says: a symlink,
 * a device or a name that is not a link id there is a finding.
 */
function overlayOwnFiles(store: Store, id: string, subject: string, f: Findings, checkLower: boolean): void {
  const dir = `${store.driver}/${id}`;
  const problems: Problem[] = [];
  const link = metaText(store.fs, `${dir}/link`, LIMITS.meta, problems);
  const lower = metaText(store.fs, `${dir}/lower`, LIMITS.meta, problems);
  for (const p of problems) f.add(p.code, subject, p.message, store.shown(p.path ?? dir));
  if (link !== undefined && !LINK_ID.test(link)) {
    f.add(
      'ID_INVALID',
      subject,
      `${id}/link is ${JSON.stringify(link.slice(0, 80))}, not a 26-character link id: docker rm would remove l/ by that name`,
      store.shown(`${dir}/link`),
    );
  }
  // The container layer's own lower and diff are checked where its view is resolved; the init
  // layer's diff is a lower of that view, reached through an l/ link.
  if (!checkLower) return;
  const bad = lower !== undefined ? lower.split(':').find((e) => !LOWER_ENTRY.test(e)) : undefined;
  if (bad !== undefined)
    f.add(
      'OVERLAY_LOWER_INVALID',
      subject,
      `${id}/lower names ${JSON.stringify(bad.slice(0, 80))}, not an l/<26-character link>: mounting the layer fails`,
      store.shown(`${dir}/lower`),
    );
  const k = store.fs.kind(`${dir}/diff`);
  if (k === 'symlink') {
    const target = store.fs.readlink(`${dir}/diff`) ?? '';
    f.add(
      symlinkTargetInside(`${dir}/diff`, target) === undefined ? 'SYMLINK_OUT_OF_ROOT' : 'SYMLINK_NOT_FOLLOWED',
      subject,
      `the init layer's files ${dir}/diff are a symlink to ${JSON.stringify(target)}: never followed`,
      store.shown(`${dir}/diff`),
    );
  } else if (k !== 'dir')
    f.add(
      k === 'missing' ? 'CONTAINER_LAYER_MISSING' : 'PATH_NOT_A_DIRECTORY',
      subject,
      `the init layer's files ${dir}/diff are ${k === 'missing' ? 'missing' : `a ${k}, not a directory`}: starting the container fails`,
      store.shown(`${dir}/diff`),
    );
}

/** The BoltDB files of the root (found by their magic), never through a symlink. */
function boltFiles(store: Store): { path: string }[] {
  return listFiles(store.fs, { type: 'bolt', sort: false });
}

/**
 * Where dockerd keeps only regular files and directories: a symlink, FIFO, device or socket there
 * is tampering. Checked: the store's directories, the entries of image/<driver>/, containers/<id>/
 * and network/files/, the top of volumes/ and of the driver home.
 */
function confinement(store: Store, f: Findings): void {
  const fs = store.fs;
  const L = store.L;
  const d = store.driver;
  const report = (rel: string, kind: string, what: string): void => {
    if (kind === 'symlink') {
      const target = fs.readlink(rel) ?? '';
      const out = symlinkTargetInside(rel, target) === undefined;
      f.add(
        out ? 'SYMLINK_OUT_OF_ROOT' : 'SYMLINK_NOT_FOLLOWED',
        rel,
        `${rel} is a symlink to ${JSON.stringify(target)} where dockerd keeps ${what}: never followed`,
        store.shown(rel),
      );
    } else f.add(kind === 'dir' ? 'PATH_NOT_A_DIRECTORY' : 'FILE_NOT_REGULAR', rel, `${rel} is a ${kind} where dockerd keeps ${what}`, store.shown(rel));
  };
  const dirs = [
    L.imageRoot(d),
    `${L.imageRoot(d)}/imagedb`,
    `${L.imageRoot(d)}/imagedb/content`,
    L.imageContentDir(d),
    `${L.imageRoot(d)}/imagedb/metadata`,
    L.imageMetadataDir(d),
    `${L.imageRoot(d)}/layerdb`,
    L.layerDbDir(d),
    L.mountsDir(d),
    L.layerDbTmp(d),
    L.containersDir,
    L.volumesDir,
    'network',
    'network/files',
    d,
    `${d}/l`,
  ];
  const seen = new Set<string>();
  for (const rel of dirs) {
    if (seen.has(rel)) continue;
    seen.add(rel);
    let k: string;
    try {
      const st = fs.lstat(rel);
      if (st === undefined) continue;
      k = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
    } catch {
      continue; // an ancestor is reported itself
    }
    if (k === 'symlink') report(rel, 'symlink', 'a directory');
    else if (k !== 'dir') f.add('PATH_NOT_A_DIRECTORY', rel, `${rel} is not a directory`, store.shown(rel));
  }
  // Files dockerd writes (one level inside each store directory, and the store's own files).
  const fileDirs = [L.imageRoot(d), L.imageContentDir(d), `${L.imageRoot(d)}/distribution`, 'network/files'];
  for (const dir of fileDirs) {
    for (const n of fs.names(dir)) {
      const rel = `${dir}/${n}`;
      const k = fs.kind(rel);
      if (k === 'symlink' || (k !== 'file' && k !== 'dir')) report(rel, k, 'a regular file');
    }
  }
  for (const dir of [L.imageMetadataDir(d), L.layerDbDir(d), L.mountsDir(d), L.containersDir]) {
    for (const n of fs.names(dir)) {
      const rel = `${dir}/${n}`;
      const k = fs.kind(rel);
      if (k !== 'dir') {
        if (k === 'symlink' || k !== 'file') report(rel, k, 'a directory');
        continue;
      }
      for (const m of fs.names(rel)) {
        const r2 = `${rel}/${m}`;
        const k2 = fs.kind(r2);
        if (k2 === 'symlink' || (k2 !== 'file' && k2 !== 'dir')) report(r2, k2, 'a regular file or directory');
      }
    }
  }
  for (const n of fs.names(L.volumesDir)) {
    const rel = `${L.volumesDir}/${n}`;
    const k = fs.kind(rel);
    if (n === 'backingFsBlockDev' && k === 'block') continue; // dockerd's quota probe device
    if (k === 'symlink' || (k !== 'file' && k !== 'dir')) report(rel, k, 'a volume directory or its metadata');
    else if (k === 'dir') {
      const data = `${rel}/_data`;
      const k2 = fs.kind(data);
      if (k2 === 'symlink') report(data, k2, "a volume's data directory");
    }
  }
  for (const n of fs.names(`${d}/l`)) {
    const rel = `${d}/l/${n}`;
    const k = fs.kind(rel);
    if (k !== 'symlink') {
      f.add('OVERLAY_LINK_BROKEN', rel, `${rel} is a ${k}, not a symlink`, store.shown(rel));
      continue;
    }
    const target = fs.readlink(rel) ?? '';
    if (!LINK_TARGET.test(target)) {
      const out = symlinkTargetInside(rel, target) === undefined;
      f.add(
        out ? 'SYMLINK_OUT_OF_ROOT' : 'OVERLAY_LINK_BROKEN',
        rel,
        `${rel} points to ${JSON.stringify(target)}, not ../<layer>/diff: never followed`,
        store.shown(rel),
      );
    }
  }
}

/** Reads a layer's tar-split entries (gunzipped, decoded), or throws TARSPLIT_INVALID. */
async function tarSplitEntries(fs: Confined, l: LayerRecord): Promise<Entry[]> {
  const out: Entry[] = [];
  try {
    // verify holds a layer's entries in memory: a stream past 1 GiB is not a tar-split dockerd wrote.
    for await (const e of decodeEntries(tarSplitStream(fs, l, 1 << 30))) out.push(e);
  } catch (e) {
    if (e instanceof DatarootError) throw e;
    throw new DatarootError('TARSPLIT_INVALID', `tar-split.json.gz is not a complete gzip stream (${(e as Error).message})`);
  }
  return out;
}

async function* listEntries(entries: Entry[]): AsyncGenerator<Entry> {
  yield* entries;
}

const td = new TextDecoder();

/**
 * The tree a layer's tar describes: `overlay` this layer only, whiteouts as the devices overlayfs
 * keeps; `keep` this layer only, whiteouts as the `.wh.` files aufs keeps; `apply` the whole chain
 * with whiteouts executed (full-tree drivers).
 */
function expectedTree(layers: Entry[][], mode: 'overlay' | 'keep' | 'apply'): Map<string, 'dir' | 'any'> {
  const overlay = mode !== 'apply';
  const tree = new Map<string, 'dir' | 'any'>();
  const addWithParents = (rel: string, kind: 'dir' | 'any'): void => {
    if (rel === '') return;
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) tree.set(parts.slice(0, i).join('/'), 'dir');
    if (!tree.has(rel) || kind === 'dir') tree.set(rel, kind);
  };
  const removeTree = (rel: string, keepSelf: boolean): void => {
    for (const k of [...tree.keys()]) if (k.startsWith(`${rel}/`) || (!keepSelf && k === rel)) tree.delete(k);
  };
  for (const entries of layers) {
    const mine: { rel: string; dir: boolean }[] = [];
    for (const e of entries) {
      if (e.type !== 1) continue;
      const rel = layerPath(e.name);
      if (rel === undefined || rel === '') continue;
      const base = rel.split('/').pop()!;
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
      if (mode === 'keep' && base.startsWith('.wh.')) {
        addWithParents(rel, 'any');
        continue;
      }
      if (base === '.wh..wh..opq') {
        if (!overlay) removeTree(parent, true);
        addWithParents(parent, 'dir');
        continue;
      }
      if (base.startsWith('.wh.')) {
        const target = parent === '' ? base.slice(4) : `${parent}/${base.slice(4)}`;
        if (overlay) addWithParents(target, 'any');
        else removeTree(target, false);
        if (parent !== '') addWithParents(parent, 'dir');
        continue;
      }
      mine.push({ rel, dir: td.decode(e.name).endsWith('/') });
    }
    for (const m of mine) {
      // A file that replaces a directory of a lower layer hides what was below it.
      if (!overlay && !m.dir && tree.get(m.rel) === 'dir') removeTree(m.rel, true);
      addWithParents(m.rel, m.dir ? 'dir' : 'any');
    }
  }
  return tree;
}

/** The tree on disk (aufs: without the branch's own `.wh..wh.*` entries at its top, which no tar carries). */
function actualTree(fs: Confined, base: string, aufs: boolean): Set<string> {
  const out = new Set<string>();
  for (const e of fs.walk(base)) {
    const rel = e.rel.slice(base.length + 1);
    if (aufs && /^\.wh\.\.wh\.(?!\.opq$)[^/]*(\/|$)/.test(rel)) continue;
    out.add(rel);
  }
  return out;
}

/** directory.Size of dockerd: Lstat sizes of non-directories with size > 0, each inode once. */
function duSize(fs: Confined, base: string): number {
  let total = 0;
  const seen = new Set<string>();
  for (const e of fs.walk(base)) {
    if (e.stat.isDirectory() || e.stat.size === 0) continue;
    const k = `${e.stat.ino}`;
    if (seen.has(k)) continue;
    seen.add(k);
    total += e.stat.size;
  }
  return total;
}

/** --deep: rebuild each layer's tar from tar-split and the driver directory, as docker save does. */
async function deep(store: Store, f: Findings, scope: Set<string> | undefined, opts: VerifyOptions): Promise<number> {
  const layers = [...store.layers.values()].filter(
    (l) => (scope === undefined || scope.has(l.chainId)) && l.problems.length === 0 && l.tarSplit && l.driverDirExists && l.diffId !== undefined,
  );
  const entriesOf = new Map<string, Entry[] | undefined>();
  const load = async (l: LayerRecord): Promise<Entry[] | undefined> => {
    if (entriesOf.has(l.chainId)) return entriesOf.get(l.chainId);
    let es: Entry[] | undefined;
    try {
      es = await tarSplitEntries(store.fs, l);
    } catch (e) {
      f.add(
        'TARSPLIT_INVALID',
        l.chainId,
        `${e instanceof DatarootError ? e.message : String(e)}: docker save and docker push of images using this layer fail`,
        store.shown(`${l.dir}/tar-split.json.gz`),
      );
      es = undefined;
    }
    entriesOf.set(l.chainId, es);
    return es;
  };
  let totalBytes = 0;
  for (const l of layers) {
    const es = await load(l);
    if (es !== undefined) for (const e of es) totalBytes += e.type === 1 ? e.size : (e.payload?.length ?? 0);
  }
  let done = 0;
  let bytes = 0;
  for (const l of layers) {
    const es = await load(l);
    done++;
    if (es === undefined) continue;
    let base: string;
    try {
      base = layerContentDir(store, l.cacheId!);
    } catch (e) {
      if (!(e instanceof DatarootError)) throw e;
      f.add(e.code, l.chainId, e.message, store.shown(l.dir));
      continue;
    }
    if (!store.fs.isDir(base)) continue; // reported by the shallow checks
    // A name that escapes the layer is a hostile tar-split whatever the content.
    const escaping = es.filter((e): e is FileEntry => e.type === 1 && layerPath(e.name) === undefined);
    for (const e of escaping)
      f.add(
        'TARSPLIT_PATH_ESCAPE',
        l.chainId,
        `tar-split names ${JSON.stringify(td.decode(e.name).slice(0, 200))}, outside the layer: docker save would read a file of the host`,
        store.shown(`${l.dir}/tar-split.json.gz`),
      );
    // Pass 1: the sha256 of the rebuilt tar (what docker save checks against the diffID).
    const hash = createHash('sha256');
    // A file longer or shorter than recorded also breaks the rebuild (dockerd copies whole files).
    let sizeIssues = 0;
    try {
      for await (const c of assemble(listEntries(es), layerFileSource(store.fs, base), { crc: false, onIssue: () => void sizeIssues++ })) {
        hash.update(c);
        bytes += c.length;
        opts.onProgress?.({ layer: done, layers: layers.length, bytes, totalBytes });
      }
    } catch (e) {
      f.add('TARSPLIT_INVALID', l.chainId, e instanceof DatarootError ? e.message : String(e), store.shown(l.dir));
      continue;
    }
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== l.diffId || sizeIssues > 0) {
      const what =
        got !== l.diffId
          ? `has sha256 ${got}, not its diffID ${l.diffId}`
          : `cannot be rebuilt to its diffID ${l.diffId} (${sizeIssues} files changed size or are missing)`;
      f.add(
        'LAYER_DIFFID_MISMATCH',
        l.chainId,
        `the rebuilt layer tar ${what}: docker save and docker push fail ("could not verify layer data")`,
        store.shown(base),
      );
      // Pass 2: which files (CRC-64 per file, as tar-split checks).
      const named: AssembleIssue[] = [];
      for await (const _ of assemble(listEntries(es), layerFileSource(store.fs, base), { crc: true, onIssue: (i) => named.push(i) })) void _;
      for (const i of named) {
        if (i.kind === 'escape') continue;
        const rel = layerPath(i.name) ?? td.decode(i.name);
        if (i.kind === 'missing')
          f.add(
            'LAYER_FILE_MISSING',
            l.chainId,
            `${JSON.stringify(rel)} is missing from the layer (or is not a regular file): docker save fails and containers do not see it`,
            store.shown(`${base}/${rel}`),
          );
        else
          f.add(
            'LAYER_FILE_MODIFIED',
            l.chainId,
            `${JSON.stringify(rel)} was modified: ${i.message.replace(/^"[^"]*"(: )?/, '')}; containers see the new content, docker save fails ("file integrity checksum failed")`,
            store.shown(`${base}/${rel}`),
          );
      }
    }
    // The tree on disk against the tree the tar describes.
    const chain: Entry[][] = [];
    const full = store.adapter.content === 'full';
    if (full) {
      const ids: LayerRecord[] = [];
      for (let p: LayerRecord | undefined = l, i = 0; p !== undefined && i < 200; p = p.parent === undefined ? undefined : store.layers.get(p.parent), i++)
        ids.unshift(p);
      for (const x of ids) {
        const xs = x.tarSplit ? await load(x) : undefined;
        if (xs === undefined) {
          chain.length = 0;
          break;
        }
        chain.push(xs);
      }
    } else chain.push(es);
    if (chain.length > 0) {
      const want = expectedTree(chain, store.adapter.layerTree);
      const have = actualTree(store.fs, base, store.adapter.name === 'aufs');
      const reported = new Set(f.list.filter((x) => x.subject === l.chainId).flatMap((x) => x.paths));
      for (const p of have) {
        if (!want.has(p))
          f.add(
            'LAYER_FILE_ADDED',
            l.chainId,
            `${JSON.stringify(p)} is in the layer directory but not in the layer's tar: containers see it, docker save does not carry it`,
            store.shown(`${base}/${p}`),
          );
      }
      for (const [p] of want) {
        if (!have.has(p) && !reported.has(store.shown(`${base}/${p}`)))
          f.add(
            'LAYER_FILE_MISSING',
            l.chainId,
            `${JSON.stringify(p)} is in the layer's tar but not in its directory: containers do not see it`,
            store.shown(`${base}/${p}`),
          );
      }
    }
    // The recorded size: directory.Size of the layer's own dir (overlay2, fuse-overlayfs, aufs), or the
    // sum of the tar's file sizes for the drivers that apply layers naively (vfs, overlay, btrfs, zfs),
    // and so does BuildKit for every driver when it registers a result as a layer (RegisterByGraphID,
    // under its 25-character directory name).
    const real =
      store.adapter.layerTree === 'apply' || BUILDKIT_ID.test(l.cacheId ?? '')
        ? es.reduce((a, e) => a + (e.type === 1 ? e.size : 0), 0)
        : duSize(store.fs, base);
    if (l.size !== undefined && real !== l.size) {
      f.add(
        'LAYER_SIZE_MISMATCH',
        l.chainId,
        `size records ${l.size} bytes but the layer holds ${real}: files were added or changed after the layer was registered (docker images shows the recorded size)`,
        store.shown(`${l.dir}/size`),
      );
    }
  }
  return bytes;
}

/** `dataroot verify`: every check on the root, then the deep ones on the layers when asked. */
export async function verifyRoot(store: Store, opts: VerifyOptions): Promise<VerifyResult> {
  const f = new Findings();
  let only: Set<string> | undefined;
  if (opts.images !== undefined && opts.images.length > 0) {
    only = new Set();
    for (const q of opts.images) {
      const r = store.lookupImage(q);
      if (r.image === undefined) throw new DatarootError(r.error?.code ?? 'IMAGE_NOT_FOUND', r.error?.message ?? `No such image: ${q}`);
      only.add(r.image.id);
    }
  }
  shallow(store, f, only);
  if (only === undefined) confinement(store, f);
  const scope = only === undefined ? undefined : chainsOf(store, [...only]);
  const layerBytes = opts.deep ? await deep(store, f, scope, opts) : 0;
  const order = (x: Finding): string => `${x.severity === 'error' ? 0 : 1}${x.code}${x.subject}${x.paths.join()}`;
  const findings = f.list.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  return {
    root: store.root.source,
    driver: store.driver,
    deep: opts.deep,
    checked: {
      images: only?.size ?? store.images.size,
      layers: scope?.size ?? store.layers.size,
      containers: only === undefined ? store.containers.length : 0,
      boltFiles: only === undefined ? boltFiles(store).length : 0,
      layerBytes,
    },
    findings,
    errors: findings.filter((x) => x.severity === 'error').length,
    warnings: findings.filter((x) => x.severity === 'warning').length,
  };
}
