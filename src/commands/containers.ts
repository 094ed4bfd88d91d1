import type { Command } from 'commander';
import { CHANGE_LETTER, containerChanges, inspectContainer, listContainers, requireContainer } from '../ops/containers.js';
import type { Ctx, GlobalOpts } from './context.js';
import { emitJson, writeTable } from './render.js';
import type { Problem } from '../store/problems.js';
import { ago, inspectQueries, reportProblems } from './storectx.js';
import { dockerContainerChanges, findDockerContainer, inspectDockerContainer, listDockerContainers } from '../ops/containerddocker.js';
import { chosenContainerd, noteBothStores, withDockerStores } from './cddocker.js';
import { inspectLegacyContainer, listLegacyContainers, requireLegacyContainer } from '../ops/legacy.js';
import { renderLegacyContainers } from './legacy.js';
import { legacyUnsupported } from './legacy.js';

function trunc(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

export function registerContainers(program: Command, ctx: Ctx): void {
  program
    .command('containers')
    .alias('ps')
    .description('every container (like docker ps -a); --json gives the API objects')
    .option('--no-trunc', 'do not truncate IDs and commands')
    .option('-a, --all', 'accepted as docker ps takes it: every container is listed anyway')
    .action(async (o: { trunc: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withDockerStores(g, ctx, async (st) => {
        if (st.legacy !== undefined) {
          const lr = listLegacyContainers(st.legacy);
          if (g.json) emitJson(ctx, lr.containers);
          else await renderLegacyContainers(ctx, lr, o.trunc);
          reportProblems(ctx, lr.problems);
          return;
        }
        noteBothStores(ctx, st);
        // Containers are config.v2.json files whatever the image store; the store dockerd uses reads them.
        const r =
          st.graph !== undefined && (st.containerd === undefined || st.choice.uses === 'graphdriver')
            ? listContainers(st.graph())
            : (listDockerContainers(st.containerd!) as unknown as ReturnType<typeof listContainers>);
        if (g.json) emitJson(ctx, r.containers);
        else {
          const rows = r.containers.map((c) => {
            const ports = (c['Ports'] as { PrivatePort: number; Type: string; PublicPort?: number; IP?: string }[]).map((p) =>
              p.PublicPort !== undefined ? `${p.IP ?? ''}:${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`,
            );
            return [
              o.trunc ? c.Id.slice(0, 12) : c.Id,
              c.Image.startsWith('sha256:') && o.trunc ? c.Image.slice(7, 19) : c.Image,
              o.trunc ? trunc(JSON.stringify(c.Command), 22) : JSON.stringify(c.Command),
              ago(c.Created),
              c.Status,
              ports.join(', '),
              c.Names.map((n) => n.replace(/^\//, '')).join(','),
            ];
          });
          await writeTable(ctx, ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'], rows);
          for (const c of r.containers) {
            const note = (c['Dataroot'] as { note?: string } | undefined)?.note;
            if (note !== undefined) ctx.stderr.write(`dataroot: ${c.Names[0]}: ${note}\n`);
          }
        }
        reportProblems(ctx, r.problems);
      });
    });

  const container = program.command('container').description('one container: inspect, diff');
  container
    .command('inspect')
    .argument('<container...>', 'ID, name or unique ID prefix')
    .description('the object docker container inspect prints, plus a Dataroot section')
    .action(async (qs: string[], _o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withDockerStores(g, ctx, (st) => {
        const cd = chosenContainerd(st);
        const ls = st.legacy;
        inspectQueries(
          ctx,
          g.json === true,
          qs,
          (q) =>
            ls !== undefined
              ? inspectLegacyContainer(ls, requireLegacyContainer(ls, q))
              : cd !== undefined
                ? inspectDockerContainer(cd, findDockerContainer(cd, q))
                : (() => {
                    const s = st.graph!();
                    return inspectContainer(s, requireContainer(s, q));
                  })(),
          (c) => (c['Dataroot'] as { problems: Problem[] }).problems,
        );
      });
    });

  container
    .command('diff')
    .argument('<container>', 'ID, name or unique ID prefix')
    .description("offline docker container diff: A/C/D from the container's read-write layer (--json adds size, mode, owner, mtime, sha256)")
    .action(async (q: string, _o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withDockerStores(g, ctx, (st) => {
        if (st.legacy !== undefined) throw legacyUnsupported(st.legacy.root);
        const cd = chosenContainerd(st);
        const changes =
          cd !== undefined
            ? dockerContainerChanges(cd, findDockerContainer(cd, q))
            : (() => {
                const s = st.graph!();
                return containerChanges(s, requireContainer(s, q), g.json === true);
              })();
        if (g.json) emitJson(ctx, changes);
        else ctx.stdout.write(changes.map((c) => `${CHANGE_LETTER[c.Kind]} ${c.Path}\n`).join(''));
      });
    });
}
