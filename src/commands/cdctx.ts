import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { containerdIn, systemContainerd } from '../store/containerd/locate.js';
import { SYSTEM_CONTAINERD_ROOT } from '../store/containerd/layout.js';
import { CdRoot } from '../store/containerd/model.js';
import { openRoot, type OpenedRoot } from '../store/root.js';
import { rootOf, rootOptions, type Ctx, type GlobalOpts } from './context.js';

/**
 * Finding containerd's root for a command: `--containerd-root DIR` (a directory or an archive of
 * one); else `<root>/containerd/daemon` when it holds a meta.db (the containerd dockerd starts
 * itself), or the root itself when it is a containerd root; else, when --root was not given,
 * /var/lib/containerd (a system containerd: Docker 29 with the system's containerd, Kubernetes
 * nodes). `docker` is the data-root opened on the way, when there is one.
 */
export async function withContainerd<T>(g: GlobalOpts, ctx: Ctx, fn: (cd: CdRoot, docker: OpenedRoot | undefined) => T | Promise<T>): Promise<T> {
  const opened: OpenedRoot[] = [];
  try {
    let found: ReturnType<typeof containerdIn>;
    let docker: OpenedRoot | undefined;
    const { root, explicit } = rootOf(g, ctx);
    if (g.containerdRoot !== undefined) {
      const r = await openRoot(resolve(ctx.cwd, g.containerdRoot), rootOptions(g));
      opened.push(r);
      found = containerdIn(r, 'flag');
      if (found === undefined)
        throw new DatarootError('CONTAINERD_ROOT_NOT_FOUND', `--containerd-root ${g.containerdRoot} holds no io.containerd.metadata.v1.bolt/meta.db`, {
          file: g.containerdRoot,
        });
      if (explicit) {
        try {
          docker = await openRoot(root, rootOptions(g));
          opened.push(docker);
        } catch (e) {
          if (!(e instanceof DatarootError)) throw e;
        }
      }
    } else {
      try {
        docker = await openRoot(root, rootOptions(g));
        opened.push(docker);
        found = containerdIn(docker, 'auto');
      } catch (e) {
        if (!(e instanceof DatarootError) || explicit) throw e;
      }
      if (found === undefined && !explicit) found = systemContainerd(SYSTEM_CONTAINERD_ROOT);
      if (found === undefined) {
        throw new DatarootError(
          'CONTAINERD_ROOT_NOT_FOUND',
          explicit
            ? `${root} holds no containerd store (neither containerd/daemon/io.containerd.metadata.v1.bolt/meta.db nor io.containerd.metadata.v1.bolt/meta.db): --containerd-root names one`
            : `no containerd store: ${root}/containerd/daemon and ${SYSTEM_CONTAINERD_ROOT} hold no meta.db (--containerd-root names one)`,
          { file: root },
        );
      }
    }
    const cd = new CdRoot(found.fs, found.location);
    try {
      return await fn(cd, docker);
    } finally {
      cd.close();
    }
  } finally {
    for (const r of opened.reverse()) r.close();
  }
}
