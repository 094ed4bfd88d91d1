import { DatarootError } from '../formats/errors.js';
import type { CdSnapshot } from '../store/containerd/model.js';
import { DiskLayer, type ViewLayer } from '../store/mergedview.js';
import type { Problem } from '../store/problems.js';
import { WHITEOUTS } from '../store/rootfs.js';
import { snapshotViewDirs } from './containerd.js';
import { familiarName, findDockerContainer, MOBY_NS, resolveDockerImage, snapshotterOf, type DockerCdContext } from './containerddocker.js';
import { dockerCreateLayer, trustedXattrProblem, type TargetView } from './views.js';

/**
 * The views `export` reads on a root whose images are in Docker's containerd image store: a
 * container's read-write snapshot (key: its ID, namespace moby) over its `<id>-init` parent and
 * the image's committed snapshots, as dockerd 29 mounts it; an image's unpacked snapshot chain
 * (key: the top layer's chainID) under what `docker create` adds, as for a graphdriver image.
 */

/** The layers of a snapshot's view, topmost first: overlayfs snapshots stacked, a native one a full tree. */
export function snapshotLayers(ctx: DockerCdContext, s: CdSnapshot): ViewLayer[] {
  const view = snapshotViewDirs(ctx.cd, s);
  const rules = view.full ? WHITEOUTS.none : WHITEOUTS.overlay;
  return view.dirs.map((d) => new DiskLayer(ctx.cd.fs, d, rules));
}

function notFound(e: unknown, code: string): boolean {
  return e instanceof DatarootError && e.code === code;
}

/** A container by ID, name or prefix, else an image by reference or ID (TARGET_NOT_FOUND when neither). */
export function dockerCdView(ctx: DockerCdContext, q: string, now = Date.now()): TargetView & { snapshotter: string } {
  let container;
  try {
    container = findDockerContainer(ctx, q);
  } catch (e) {
    if (!notFound(e, 'CONTAINER_NOT_FOUND')) throw e;
  }
  if (container !== undefined) {
    const snapshotter = snapshotterOf(ctx, container);
    const s = ctx.cd.snapshotByKey(MOBY_NS, snapshotter, container.id);
    if (s === undefined)
      throw new DatarootError('CONTAINER_LAYER_MISSING', `container ${container.id} has no snapshot ${container.id} in ${snapshotter} (namespace moby)`);
    const layers = snapshotLayers(ctx, s);
    const p = trustedXattrProblem(layers);
    return {
      target: { kind: 'container', id: container.id, name: (container.config?.Name ?? '').replace(/^\//, '') },
      layers,
      problems: p !== undefined ? [p] : [],
      snapshotter,
    };
  }
  let img;
  try {
    img = resolveDockerImage(ctx, q);
  } catch (e) {
    if (notFound(e, 'IMAGE_NOT_FOUND')) throw new DatarootError('TARGET_NOT_FOUND', `No such container or image: ${q}`, {});
    throw e;
  }
  const resolved = ctx.cd.resolve(img, ctx.snapshotter);
  // The host's manifest; else (evidence from another architecture) the one that is unpacked.
  const m = resolved.best ?? resolved.manifests.find((x) => x.unpacked);
  if (m === undefined)
    throw new DatarootError(
      'IMAGE_NO_PLATFORM',
      `image ${img.Name} has no present manifest for ${ctx.cd.host.os}/${ctx.cd.host.architecture}, and none of another platform is unpacked`,
    );
  const problems: Problem[] = [];
  const top = m.chainIds[m.chainIds.length - 1];
  let below: ViewLayer[] = [];
  if (top !== undefined) {
    const s = ctx.cd.snapshotByKey(MOBY_NS, ctx.snapshotter, top);
    if (s === undefined)
      throw new DatarootError(
        'CONTAINERD_SNAPSHOT_MISSING',
        `image ${img.Name} is not unpacked: no ${ctx.snapshotter} snapshot ${top} in namespace moby (dockerd unpacks it when a container is created)`,
      );
    below = snapshotLayers(ctx, s);
  }
  const wd = (m.config?.view?.raw['config'] as Record<string, unknown> | undefined)?.['WorkingDir'];
  const init = dockerCreateLayer(below, typeof wd === 'string' ? wd : undefined, now, problems);
  const p = trustedXattrProblem(below);
  if (p !== undefined) problems.push(p);
  return {
    target: { kind: 'image', id: img.Target.digest, name: familiarName(img.Name) ?? img.Target.digest.slice(7, 19) },
    layers: [init, ...below],
    problems,
    snapshotter: ctx.snapshotter,
  };
}
