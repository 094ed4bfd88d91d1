import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { parseReference } from '../formats/docker/reference.js';
import { DatarootError } from '../formats/errors.js';
import { TarReader } from '../formats/tar/reader.js';
import { disassemble } from '../formats/tarsplit/stream.js';
import { LayerCheck } from '../formats/tar/layercheck.js';
import { openImageArchive, openLayer, type ArchiveImage, type ArchiveSource } from '../store/archive.js';
import type { Finding } from './verify.js';
import { removeTree } from '../io/confined.js';
import { severityOf, type ErrorCode } from '../formats/errorcodes.js';

export interface ArchiveVerifyResult {
  archive: string;
  kind: string;
  images: { label: string; id: string; tags: string[]; layers: number }[];
  findings: Finding[];
  errors: number;
  warnings: number;
}

const FIX: Partial<Record<ErrorCode, string>> = {
  ARCHIVE_DIFFID_MISMATCH: 'the layer is not the one the config names: re-export the image',
  ARCHIVE_BLOB_DIGEST_MISMATCH: 'a blob does not match its digest: re-export or re-copy the image',
  ARCHIVE_CONFIG_DIGEST_MISMATCH: 'the config does not match its digest: re-export the image',
  ARCHIVE_LAYER_COUNT_MISMATCH: 'the manifest and the config disagree: re-export the image',
  ARCHIVE_LAYER_INVALID: 'the layer is not a valid tar: re-export the image',
  ARCHIVE_LAYER_UNSAFE: 'do not load this archive: a layer writes outside its root',
  ARCHIVE_TAG_INVALID: 'fix the RepoTags entry (name:tag)',
};

function finding(code: ErrorCode, subject: string, message: string, severity = severityOf(code), paths: string[] = []): Finding {
  return { code, severity, subject, message, paths, fix: FIX[code] ?? 're-export the image' };
}

/**
 * `dataroot verify image.tar`: the checks `docker load` makes, without a daemon: the configs
 * parse and (in an OCI layout) match their digests, every blob matches its digest, every layer
 * decompresses (gzip, zstd, bzip2, xz) to a tar whose sha256 is the config's diffID, the manifest
 * and config agree on the number of layers, no layer has duplicate or escaping paths.
 */
export async function verifyArchive(path: string, opts: { platform?: string } = {}): Promise<ArchiveVerifyResult> {
  const work = mkdtempSync(join(tmpdir(), 'dataroot-verify-'));
  try {
    const archive = await openImageArchive(path, { workDir: work, ...(opts.platform !== undefined ? { platform: opts.platform } : {}) });
    const findings: Finding[] = archive.problems.map((p) => finding(p.code, path, p.message, 'error'));
    const checkedLayers = new Map<string, string | undefined>();
    for (const img of archive.images) {
      // A problem of the archive stops docker load: an error whatever its code's default severity.
      for (const p of img.problems) findings.push(finding(p.code, img.label, p.message, 'error'));
      for (const t of img.repoTags) {
        if (t.startsWith(':')) continue;
        const r = parseReference(t);
        if (r === undefined || r.digest !== undefined)
          findings.push(finding('ARCHIVE_TAG_INVALID', img.label, `RepoTags entry ${JSON.stringify(t)} is not a name:tag reference: docker load refuses it`));
      }
      const nameHex = /([a-f0-9]{64})(\.json)?$/.exec(img.configMember)?.[1];
      if (img.id !== '' && nameHex !== undefined && `sha256:${nameHex}` !== img.id && archive.kind === 'docker-save') {
        findings.push(
          finding(
            'ARCHIVE_CONFIG_DIGEST_MISMATCH',
            img.label,
            `${img.configMember} is named after ${nameHex} but its sha256 is ${img.id}: the image ID will be ${img.id}`,
          ),
        );
      }
      await checkLayers(archive.source, img, findings, checkedLayers);
    }
    const errors = findings.filter((f) => f.severity === 'error').length;
    return {
      archive: path,
      kind: archive.kind,
      images: archive.images.map((i) => ({ label: i.label, id: i.id, tags: i.repoTags, layers: i.layers.length })),
      findings,
      errors,
      warnings: findings.length - errors,
    };
  } finally {
    removeTree(work);
  }
}

async function checkLayers(source: ArchiveSource, img: ArchiveImage, findings: Finding[], done: Map<string, string | undefined>): Promise<void> {
  for (const [i, layer] of img.layers.entries()) {
    if (!source.has(layer.member)) continue;
    let diffId = done.get(layer.member);
    if (!done.has(layer.member)) {
      diffId = undefined;
      try {
        const blob = createHash('sha256');
        const { stream } = await openLayer(source, layer, { tap: (c) => blob.update(c) });
        const h = createHash('sha256');
        // The same rules inject applies before it writes anything: what inject refuses, verify reports.
        const rules = new LayerCheck(true);
        const refused: DatarootError[] = [];
        await disassemble(
          new TarReader(hashing(stream, h)),
          () => {},
          async (e) => {
            try {
              rules.entry(e);
            } catch (err) {
              if (!(err instanceof DatarootError)) throw err;
              if (refused.length < 5) refused.push(err);
            }
          },
        );
        diffId = `sha256:${h.digest('hex')}`;
        if (layer.digest !== undefined && `sha256:${blob.digest('hex')}` !== layer.digest) {
          findings.push(
            finding('ARCHIVE_BLOB_DIGEST_MISMATCH', img.label, `layer blob ${layer.member} does not match its digest ${layer.digest}`, 'error', [layer.member]),
          );
        }
        for (const r of refused)
          findings.push(finding(r.code, img.label, `layer ${layer.member}: ${r.message}: dataroot inject refuses it`, 'error', [layer.member]));
      } catch (e) {
        const msg = e instanceof DatarootError ? e.message : String(e);
        findings.push(finding('ARCHIVE_LAYER_INVALID', img.label, `layer ${layer.member}: ${msg}`, 'error', [layer.member]));
      }
      done.set(layer.member, diffId);
    }
    const want = img.diffIds[i];
    if (diffId !== undefined && want !== undefined && diffId !== want) {
      findings.push(
        finding(
          'ARCHIVE_DIFFID_MISMATCH',
          img.label,
          `layer ${i + 1} (${layer.member}) decompresses to sha256 ${diffId}, but the config says ${want}: docker load refuses the image`,
          'error',
          [layer.member],
        ),
      );
    }
  }
}

async function* hashing(src: AsyncIterable<Uint8Array>, h: ReturnType<typeof createHash>): AsyncGenerator<Uint8Array> {
  for await (const c of src) {
    h.update(c);
    yield c;
  }
}
