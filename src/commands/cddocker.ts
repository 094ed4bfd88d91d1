import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import type { DockerCdContext } from '../ops/containerddocker.js';
import { chooseImageStore, type StoreChoice } from '../store/containerd/choice.js';
import { SYSTEM_CONTAINERD_ROOT } from '../store/containerd/layout.js';
import { containerdIn, systemContainerd } from '../store/containerd/locate.js';
import { CdRoot } from '../store/containerd/model.js';
import type { Store } from '../store/model.js';
import { openRoot, type OpenedRoot } from '../store/root.js';
import { rootOf, rootOptions, type Ctx, type GlobalOpts } from './context.js';
import { safeText } from './render.js';
import { storeOf } from './storectx.js';
import { isLegacyRoot, type LegacyStore } from '../store/legacy.js';
import { openLegacy } from './legacy.js';

/**
 * The hook that lets the ordinary Docker commands read Docker's containerd image store: the
 * data-root is opened once; when a containerd store goes with it (`<root>/containerd/daemon`,
 * --containerd-root, or /var/lib/containerd for the default root) the command runs on it, on the
 * graphdriver store, or on both, as dockerd 29 would choose (see store/containerd/choice.ts).
 */
export interface Stores {
  graph: (() => Store) | undefined;
  containerd: DockerCdContext | undefined;
  choice: StoreChoice;
  /** A pre-1.10 root (graph/, repositories-<driver>): read by the legacy reader instead. */
  legacy?: LegacyStore | undefined;
  /** Whether a root was unpacked from an archive (into a temporary directory removed at exit). */
  fromArchive?: boolean;
}

export async function withDockerStores<T>(g: GlobalOpts, ctx: Ctx, fn: (s: Stores) => T | Promise<T>): Promise<T> {
  const { root, explicit } = rootOf(g, ctx);
  const opened: OpenedRoot[] = [];
  let cdRoot: CdRoot | undefined;
  try {
    let r: OpenedRoot | undefined;
    let openErr: DatarootError | undefined;
    try {
      r = await openRoot(root, rootOptions(g, ctx));
      opened.push(r);
      if (isLegacyRoot(r)) {
        const legacy = await openLegacy(r, g, ctx);
        return await fn({
          graph: undefined,
          containerd: undefined,
          choice: { uses: 'graphdriver', reason: 'a pre-1.10 root', graphdriver: true, containerd: false },
          legacy,
        });
      }
    } catch (e) {
      if (!(e instanceof DatarootError) || (explicit && g.containerdRoot === undefined)) throw e;
      openErr = e;
    }
    let found: ReturnType<typeof containerdIn>;
    if (g.containerdRoot !== undefined) {
      const c = await openRoot(resolve(ctx.cwd, g.containerdRoot), rootOptions(g, ctx));
      opened.push(c);
      found = containerdIn(c, 'flag');
      if (found === undefined)
        throw new DatarootError('CONTAINERD_ROOT_NOT_FOUND', `--containerd-root ${g.containerdRoot} holds no io.containerd.metadata.v1.bolt/meta.db`, {
          file: g.containerdRoot,
        });
    } else if (r !== undefined) found = containerdIn(r, 'auto');
    // A graphdriver store that is there, or was tampered with (image/ or image/<driver> a symlink,
    // a file): read, so that what was done to it is reported, not taken for a root without one.
    const hasGraph = r !== undefined && (r.imageStores.length > 0 || r.imageTampered.length > 0);
    if (found === undefined && !explicit && !hasGraph) found = systemContainerd(SYSTEM_CONTAINERD_ROOT);
    if (found === undefined && r === undefined) throw openErr ?? new DatarootError('STORE_NOT_FOUND', `data-root ${root} does not exist`, { file: root });
    if (found !== undefined) cdRoot = new CdRoot(found.fs, found.location);
    // dockerd before 24 runs its own containerd too (containers only while they run): a
    // containerd store counts for Docker when its moby namespace holds images or content.
    if (cdRoot !== undefined && hasGraph && g.containerdRoot === undefined) {
      const moby = cdRoot.namespaceNames().includes('moby');
      if (!moby || (cdRoot.meta.images('moby').length === 0 && cdRoot.meta.blobs('moby').length === 0)) {
        cdRoot.close();
        cdRoot = undefined;
      }
    }
    const choice: StoreChoice =
      r !== undefined
        ? chooseImageStore(r, cdRoot !== undefined)
        : { uses: 'containerd', reason: 'a containerd root only', graphdriver: false, containerd: true };
    const graph = r !== undefined && (hasGraph || g.driver !== undefined) ? () => storeOf(r, g, ctx) : undefined;
    const docker = r?.fs;
    const containerd: DockerCdContext | undefined = cdRoot === undefined ? undefined : { cd: cdRoot, docker, snapshotter: 'overlayfs' };
    const fromArchive = opened.some((o) => o.fromArchive);
    if (graph === undefined && containerd === undefined) {
      // Neither: let the graphdriver path say what is missing.
      return await fn({ graph: () => storeOf(r!, g, ctx), containerd: undefined, choice, fromArchive });
    }
    return await fn({ graph, containerd, choice, fromArchive });
  } finally {
    cdRoot?.close();
    for (const o of opened.reverse()) o.close();
  }
}

/** The containerd store when it is the one dockerd 29 would use (the only one, or chosen over the graphdriver store); else undefined. */
export function chosenContainerd(s: Stores): DockerCdContext | undefined {
  return s.containerd !== undefined && (s.graph === undefined || s.choice.uses === 'containerd') ? s.containerd : undefined;
}

/** A note on stderr when both stores are present: which one dockerd 29 uses. */
export function noteBothStores(ctx: Ctx, s: Stores): void {
  if (s.graph !== undefined && s.containerd !== undefined) {
    ctx.stderr.write(
      `dataroot: note: this root has a graphdriver image store and a containerd image store; dockerd 29 would use the ${s.choice.uses} store: ${safeText(s.choice.reason)}\n`,
    );
  }
}
