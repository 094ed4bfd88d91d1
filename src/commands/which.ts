import type { Command } from 'commander';
import { relPathUnder, which, type Sight, type WhichResult } from '../ops/which.js';
import { dockerMetaOf, whichContainerd, whichDockerOnly } from '../ops/whichcd.js';
import { withDockerStores, type Stores } from './cddocker.js';
import { legacyUnsupported } from './legacy.js';
import type { Ctx, GlobalOpts } from './context.js';
import { emitJson, paint } from './render.js';

/** `dataroot which PATH`: what owns a path of the root (exit 1 when the path does not exist). */
const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

function sightText(s: Sight): string {
  const who = `${s.name === '' ? '' : `${s.name} `}(${short(s.id)})`;
  const by = s.by !== undefined ? ` by ${s.by}` : '';
  const word: Record<Sight['sees'], string> = {
    visible: s.copy === true ? `sees it (its own copy, ${s.by})` : 'sees it',
    shadowed: `sees another version of it${by}`,
    deleted: `has it deleted${s.by !== undefined ? ` (whiteout in ${s.by})` : ''}`,
    hidden: `has it hidden${s.by !== undefined ? ` (an opaque directory or a non-directory in ${s.by})` : ''}`,
    absent: 'does not have it',
    unknown: 'uses this layer',
  };
  return `${who}: ${word[s.sees]}${s.mountedOver !== undefined ? `; a mount covers it there: ${s.mountedOver}` : ''}`;
}

export function renderWhich(ctx: Ctx, r: WhichResult): string {
  const out: string[] = [];
  out.push(`${paint(ctx, 'bold', r.path === '' ? '.' : r.path)}${r.exists ? '' : paint(ctx, 'yellow', ' (does not exist)')}`);
  out.push(`  ${r.summary}`);
  if (r.layer !== undefined) {
    out.push(`  layer     chainID ${r.layer.chainId}`);
    if (r.layer.diffId !== undefined) out.push(`            diffID  ${r.layer.diffId}`);
    if (r.snapshot === undefined) out.push(`            cache-id ${r.layer.cacheId} (${r.layer.dir})`);
  }
  if (r.images !== undefined)
    out.push(
      `  images    ${r.images.length === 0 ? 'none' : r.images.map((i) => (i.tags.length > 0 ? `${i.tags.join(', ')} (${short(i.id)})` : short(i.id))).join('; ')}`,
    );
  if (r.containers !== undefined) {
    if (r.containers.length === 0) out.push('  containers none');
    else {
      out.push('  containers');
      for (const s of r.containers) out.push(`    ${sightText(s)}`);
    }
  }
  if (r.container !== undefined && r.owner !== 'container') {
    const c = r.container;
    out.push(`  container ${c.name === '' ? '' : `${c.name} `}(${short(c.id)})${c.role !== undefined ? `: ${c.role}` : ''}`);
    if (c.pathInContainer !== undefined) out.push(`            ${c.pathInContainer} in the container`);
    if (c.effect !== undefined) out.push(`            ${c.effect}`);
    if (c.mountedOver !== undefined) out.push(`            a mount covers it in the container: ${c.mountedOver}`);
  }
  if (r.volume !== undefined) {
    const v = r.volume;
    out.push(`  volume    ${v.name}${v.pathInVolume !== '' ? `, ${v.pathInVolume}` : ''}`);
    for (const m of v.mountedBy)
      out.push(`    mounted by ${m.name === '' ? '' : `${m.name} `}(${short(m.id)}) at ${m.destination} (${m.rw ? 'rw' : 'ro'}): ${m.pathInContainer} there`);
  }
  if (r.image !== undefined) out.push(`  image     ${r.image.id}${r.image.tags.length > 0 ? ` (${r.image.tags.join(', ')})` : ''}`);
  if (r.snapshot !== undefined) {
    const s = r.snapshot;
    out.push(`  snapshot  ${s.key} (${s.kind}, ${s.snapshotter} ${s.id}, namespace ${s.namespace})`);
    if (s.parent !== null) out.push(`            parent ${s.parent}`);
  }
  for (const n of r.notes) out.push(`  note: ${n}`);
  return `${out.join('\n')}\n`;
}

const DAEMON = 'containerd/daemon';

/**
 * One path: under the containerd root (containerd/daemon of a Docker root, or a containerd root
 * itself) to the containerd reader; else to the graphdriver store, or for a Docker root on the
 * containerd image store, to its containers and volumes.
 */
function whichOne(s: Stores, arg: string): WhichResult {
  if (s.legacy !== undefined) throw legacyUnsupported(s.legacy.root);
  const cd = s.containerd?.cd;
  if (cd !== undefined) {
    const inDaemon = cd.location.how === 'docker-daemon';
    const prefix = inDaemon ? DAEMON : '';
    const docker = s.containerd?.docker === undefined ? undefined : dockerMetaOf(s.containerd.docker);
    if (arg.startsWith('/') && [cd.fs.base, cd.location.shown].some((b) => arg === b || arg.startsWith(`${b.replace(/\/+$/, '')}/`))) {
      return whichContainerd(cd, relPathUnder([cd.fs.base, cd.location.shown], arg), { prefix, docker });
    }
    if (!arg.startsWith('/')) {
      if (cd.location.how === 'root-itself') return whichContainerd(cd, relPathUnder([cd.fs.base], arg), { prefix, docker });
      const rel = relPathUnder([], arg);
      if (inDaemon && (rel === DAEMON || rel.startsWith(`${DAEMON}/`))) return whichContainerd(cd, rel.slice(DAEMON.length + 1), { prefix, docker });
    }
    if (s.graph === undefined) {
      if (docker === undefined) return whichContainerd(cd, relPathUnder([cd.fs.base, cd.location.shown], arg), { prefix, docker });
      const shown = inDaemon ? cd.location.shown.slice(0, -DAEMON.length - 1) : docker.fs.base;
      return whichDockerOnly(docker, relPathUnder([docker.fs.base, shown], arg));
    }
  }
  return which(s.graph!(), arg);
}

export function registerWhich(program: Command, ctx: Ctx): void {
  program
    .command('which')
    .argument('<path...>', 'paths under the root (relative to --root, or absolute under it)')
    .description(
      'what owns a path of the root: an image layer (chainID, diffID, images, and whether each container sees the file), a container (its rw layer or its directory), a volume (and the containers that mount it)',
    )
    .action(async (paths: string[], _o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withDockerStores(g, ctx, (s) => {
        const results = paths.map((p) => whichOne(s, p));
        if (g.json) emitJson(ctx, results);
        else ctx.stdout.write(results.map((r) => renderWhich(ctx, r)).join('\n'));
        if (results.some((r) => !r.exists) && ctx.exitCode === 0) ctx.exitCode = 1;
      });
    });
}
