/**
 * Docker image references as the reference store keeps them (familiar names) and sorts them
 * (by the fully normalized string). Only what reading repositories.json needs.
 */
export interface Reference {
  /** As stored: `foo:1`, `user/app:v`, `registry:5000/x/y:t`, `foo@sha256:…`. */
  familiar: string;
  /** Familiar repository name: `foo`, `user/app`. */
  name: string;
  tag: string | undefined;
  digest: string | undefined;
  /** `docker.io/library/foo:1` */
  normalized: string;
}

const DOMAIN_RE = /[.:]/;

/** Splits `name[:tag][@digest]`; undefined when it does not look like a reference. */
export function parseReference(s: string): Reference | undefined {
  if (s === '' || /\s/.test(s) || s !== s.trim()) return undefined;
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^[a-z0-9]+:[a-f0-9]{32,}$/.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) return undefined;
  }
  const name = rest;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/i.test(name)) return undefined;
  return {
    familiar: s,
    name: familiarName(name),
    tag,
    digest,
    normalized: `${normalizeName(name)}${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`,
  };
}

/** `foo` → `docker.io/library/foo`; `user/app` → `docker.io/user/app`; a name with a domain stays. */
export function normalizeName(name: string): string {
  const first = name.split('/')[0] ?? '';
  const hasDomain = name.includes('/') && (DOMAIN_RE.test(first) || first === 'localhost');
  if (hasDomain) return name;
  return name.includes('/') ? `docker.io/${name}` : `docker.io/library/${name}`;
}

/** The reverse of normalizeName, as reference.FamiliarName does. */
export function familiarName(name: string): string {
  if (name.startsWith('docker.io/library/') && name.split('/').length === 3) return name.slice('docker.io/library/'.length);
  if (name.startsWith('docker.io/')) return name.slice('docker.io/'.length);
  if (name.startsWith('index.docker.io/')) return familiarName(`docker.io/${name.slice('index.docker.io/'.length)}`);
  return name;
}
