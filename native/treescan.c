/*
 * Directories and whole trees with their lstat, in one call each:
 *   scandir(path) -> Buffer   (a directory's entries with their lstat, packed: see js_scandir)
 *   scanTree(root, prevIdentity, prevVolatile, carry, xattrs, threads, files)   (a whole tree,
 *     matched against the previous snapshot's manifest lines: see js_scan_tree)
 */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>

/*
 * scandir(path) -> Buffer: every entry of a directory (not . and ..) with its lstat, in byte
 * order of the names, packed: u16 name length, name bytes, then 14 little-endian u64: mode, uid,
 * gid, size, mtime sec, mtime nsec, atime sec, atime nsec, ctime sec, ctime nsec, ino, dev,
 * nlink, rdev. One call per directory instead of a readdir and an lstat per entry from
 * JavaScript. An entry removed between the readdir and its lstat is left out.
 */
#define SCAN_FIELDS 14
static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b); /* compares as unsigned char: byte order */
}

/* A directory's names (not . and ..) sorted by bytes, pointers into one arena; the directory
 * stays open (dfd) for the fstatat of each name until listing_close. */
typedef struct {
  DIR *dir;
  int dfd;
  char *arena;
  char **names;
  size_t count, bytes; /* bytes: the arena's used length, names with their NULs */
} listing_t;

static void listing_close(listing_t *l) {
  if (l->dir != NULL) closedir(l->dir);
  l->dir = NULL;
  free(l->names);
  free(l->arena);
  l->names = NULL;
  l->arena = NULL;
}

/* Opens and lists a directory: 0, or an errno with *failed naming the call (nothing left open). */
static int list_dir(const char *path, listing_t *l, const char **failed) {
  memset(l, 0, sizeof *l);
  *failed = "open";
  l->dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (l->dfd < 0) return errno;
  l->dir = fdopendir(l->dfd);
  if (l->dir == NULL) {
    int e = errno;
    close(l->dfd);
    *failed = "fdopendir";
    return e;
  }
  *failed = "scandir";
  size_t ncap = 64, acap = 1 << 12;
  size_t *offs = malloc(ncap * sizeof *offs);
  l->arena = malloc(acap);
  int e = 0;
  if (offs == NULL || l->arena == NULL) {
    e = ENOMEM;
    goto done;
  }
  struct dirent *de;
  errno = 0;
  while ((de = readdir(l->dir)) != NULL) {
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    size_t nl = strlen(n) + 1;
    if (l->count == ncap) {
      size_t *g = realloc(offs, (ncap *= 2) * sizeof *offs);
      if (g == NULL) {
        e = ENOMEM;
        goto done;
      }
      offs = g;
    }
    if (l->bytes + nl > acap) {
      while (l->bytes + nl > acap) acap *= 2;
      char *g = realloc(l->arena, acap);
      if (g == NULL) {
        e = ENOMEM;
        goto done;
      }
      l->arena = g;
    }
    memcpy(l->arena + l->bytes, n, nl);
    offs[l->count++] = l->bytes;
    l->bytes += nl;
    errno = 0;
  }
  if (errno != 0) {
    e = errno;
    *failed = "readdir";
    goto done;
  }
  l->names = malloc((l->count + 1) * sizeof *l->names);
  if (l->names == NULL) {
    e = ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < l->count; i++) l->names[i] = l->arena + offs[i];
  qsort(l->names, l->count, sizeof *l->names, cmp_names);
done:
  free(offs);
  if (e != 0) listing_close(l);
  return e;
}

napi_value js_scandir(napi_env env, napi_callback_info info) {
  char path[MAX_PATH];
  if (path_arg(env, info, path, "scandir(path)")) return NULL;
  listing_t l;
  const char *failed;
  int e = list_dir(path, &l, &failed);
  if (e != 0) return throw_errno(env, failed, path, e);
  /* Per name: u16 length, the name, its lstat. */
  unsigned char *out = malloc(l.bytes + l.count * (2 + 8 * SCAN_FIELDS) + 1);
  if (out == NULL) {
    listing_close(&l);
    return throw_errno(env, "scandir", path, ENOMEM);
  }
  size_t len = 0;
  for (size_t i = 0; i < l.count; i++) {
    const char *n = l.names[i];
    struct stat st;
    if (fstatat(l.dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue; /* vanished meanwhile */
      e = errno;
      free(out);
      listing_close(&l);
      return throw_errno(env, "fstatat", path, e);
    }
    size_t nl = strlen(n);
    out[len] = (unsigned char)(nl & 0xff);
    out[len + 1] = (unsigned char)(nl >> 8);
    memcpy(out + len + 2, n, nl);
    len += 2 + nl;
    uint64_t f[SCAN_FIELDS] = {st.st_mode, st.st_uid, st.st_gid, (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec, (uint64_t)st.st_atim.tv_sec,
                               (uint64_t)st.st_atim.tv_nsec, (uint64_t)st.st_ctim.tv_sec, (uint64_t)st.st_ctim.tv_nsec, st.st_ino, st.st_dev, st.st_nlink, st.st_rdev};
    memcpy(out + len, f, sizeof f); /* x86-64 and arm64 are little-endian */
    len += sizeof f;
  }
  listing_close(&l);
  napi_value result;
  void *data = NULL;
  if (napi_create_buffer_copy(env, len, out, &data, &result) != napi_ok) result = NULL;
  free(out);
  return result;
}

/* ---- scanTree: a whole tree in one call, matched against the previous manifest ---- */

/* A growable byte buffer; on allocation failure `failed` is set and appends are dropped. */
typedef struct {
  unsigned char *p;
  size_t len, cap;
  int failed;
} bytes_t;

static void b_put(bytes_t *b, const void *src, size_t n) {
  if (b->failed) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (b->len + n > cap) cap *= 2;
    unsigned char *g = realloc(b->p, cap);
    if (g == NULL) {
      b->failed = 1;
      return;
    }
    b->p = g;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void b_u8(bytes_t *b, unsigned v) {
  unsigned char c = (unsigned char)v;
  b_put(b, &c, 1);
}

static void b_u32(bytes_t *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(bytes_t *b, uint64_t v) { b_put(b, &v, 8); }


/* Decimal text of a signed 128-bit value. */
static size_t dec128(char *out, __int128 v) {
  char tmp[48];
  size_t n = 0;
  int neg = v < 0;
  unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
  do {
    tmp[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u != 0);
  size_t k = 0;
  if (neg) out[k++] = '-';
  while (n > 0) out[k++] = tmp[--n];
  return k;
}

static size_t dec64(char *out, uint64_t u) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u != 0);
  for (size_t k = 0; k < n; k++) out[k] = tmp[n - 1 - k];
  return n;
}

/* Nanoseconds since the epoch as decimal text. The usual case (a time after 1970, seconds that
 * fit 64 bits with room) is printed as seconds and nine digits, without 128-bit division. */
static size_t ns_text(char *out, struct timespec t) {
  if (t.tv_sec > 0 && t.tv_nsec >= 0 && t.tv_nsec < 1000000000 && (uint64_t)t.tv_sec < 1000000000000ull) {
    size_t k = dec64(out, (uint64_t)t.tv_sec);
    uint32_t ns = (uint32_t)t.tv_nsec;
    for (int d = 8; d >= 0; d--) {
      out[k + (size_t)d] = (char)('0' + ns % 10);
      ns /= 10;
    }
    return k + 9;
  }
  return dec128(out, (__int128)(int64_t)t.tv_sec * 1000000000 + (int64_t)t.tv_nsec);
}

/*
 * The manifest's volatile lines are defined in src/formats/snapstore/manifest.ts (volatileOf):
 * the caller passes their template, literal bytes with a marker byte where each field goes
 * (1 mtime, 2 atime, 3 ctime, 4 ino, 5 dev, 6 nlink; times in nanoseconds). Fields are decimal.
 */
#define VT_MAX 128
#define F_ATIME 2

/* Decimal text of field f of an lstat. */
static size_t field_text(char *out, int f, const struct stat *st) {
  switch (f) {
  case 1: return ns_text(out, st->st_mtim);
  case 2: return ns_text(out, st->st_atim);
  case 3: return ns_text(out, st->st_ctim);
  case 4: return dec64(out, (uint64_t)st->st_ino);
  case 5: return dec64(out, (uint64_t)st->st_dev);
  default: return dec64(out, (uint64_t)st->st_nlink);
  }
}

/* An lstat's volatile line, by the template. Returns its length (at most 256). */
static size_t volatile_line(const unsigned char *tpl, size_t tn, char *out, const struct stat *st) {
  size_t k = 0;
  for (size_t i = 0; i < tn; i++) {
    if (tpl[i] >= 1 && tpl[i] <= 6) k += field_text(out + k, tpl[i], st);
    else out[k++] = (char)tpl[i];
  }
  return k;
}

/* Whether a previous volatile line holds the fields of this lstat, the access time aside (it is
 * the one field that reading a file changes): the line is matched against the template, each
 * field's text ending at the first byte that is not a digit or '-'. */
static int same_but_atime(const unsigned char *tpl, size_t tn, const char *l, size_t n, const struct stat *st) {
  size_t at = 0;
  char cur[48];
  for (size_t i = 0; i < tn; i++) {
    if (tpl[i] < 1 || tpl[i] > 6) {
      if (at >= n || l[at] != (char)tpl[i]) return 0;
      at++;
      continue;
    }
    size_t from = at;
    while (at < n && ((l[at] >= '0' && l[at] <= '9') || l[at] == '-')) at++;
    if (tpl[i] == F_ATIME) continue;
    size_t cn = field_text(cur, tpl[i], st);
    if (cn != at - from || memcmp(cur, l + from, cn) != 0) return 0;
  }
  return at == n;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static size_t utf8_put(char *o, uint32_t cp) {
  if (cp < 0x80) return o[0] = (char)cp, 1;
  if (cp < 0x800) return o[0] = (char)(0xc0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
  if (cp < 0x10000) return o[0] = (char)(0xe0 | (cp >> 12)), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[2] = (char)(0x80 | (cp & 0x3f)), 3;
  o[0] = (char)(0xf0 | (cp >> 18)), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f)), o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* The path of an identity line (`["path",...`), JSON escapes decoded into out (cap MAX_PATH).
 * Returns its length, or -1 when the line does not start that way or the path does not fit. */
static long line_path(const char *l, size_t n, char *out) {
  if (n < 3 || l[0] != '[' || l[1] != '"') return -1;
  size_t k = 0;
  for (size_t i = 2; i < n; i++) {
    unsigned char c = (unsigned char)l[i];
    if (k + 4 >= MAX_PATH) return -1;
    if (c == '"') return (long)k;
    if (c != '\\') {
      out[k++] = (char)c;
      continue;
    }
    if (++i >= n) return -1;
    switch (l[i]) {
    case '"': out[k++] = '"'; break;
    case '\\': out[k++] = '\\'; break;
    case '/': out[k++] = '/'; break;
    case 'b': out[k++] = '\b'; break;
    case 'f': out[k++] = '\f'; break;
    case 'n': out[k++] = '\n'; break;
    case 'r': out[k++] = '\r'; break;
    case 't': out[k++] = '\t'; break;
    case 'u': {
      if (i + 4 >= n) return -1;
      uint32_t cp = 0;
      for (int j = 1; j <= 4; j++) {
        int h = hexval(l[i + j]);
        if (h < 0) return -1;
        cp = cp * 16 + (uint32_t)h;
      }
      i += 4;
      if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < n && l[i + 1] == '\\' && l[i + 2] == 'u') {
        uint32_t lo = 0;
        int ok = 1;
        for (int j = 3; j <= 6; j++) {
          int h = hexval(l[i + j]);
          if (h < 0) ok = 0;
          else lo = lo * 16 + (uint32_t)h;
        }
        if (ok && lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          i += 6;
        }
      }
      k += utf8_put(out + k, cp);
      break;
    }
    default: return -1;
    }
  }
  return -1;
}

/* Walk order of two relative paths: name by name (bytes), a directory before what it holds. */
static int cmp_walk(const char *a, size_t an, const char *b, size_t bn) {
  size_t i = 0, j = 0;
  for (;;) {
    int aout = i >= an, bout = j >= bn;
    if (aout || bout) return aout && bout ? 0 : aout ? -1 : 1;
    size_t ie = i, je = j;
    while (ie < an && a[ie] != '/') ie++;
    while (je < bn && b[je] != '/') je++;
    size_t la = ie - i, lb = je - j;
    int c = memcmp(a + i, b + j, la < lb ? la : lb);
    if (c != 0) return c < 0 ? -1 : 1;
    if (la != lb) return la < lb ? -1 : 1;
    i = ie + 1;
    j = je + 1;
  }
}

typedef struct {
  bytes_t ops, full, vol, xattrs;
  /* The previous manifest: identity and volatile lines, a cursor on each. */
  const char *pid, *pvol;
  size_t pid_len, pvol_len, pid_at, pvol_at;
  uint32_t entries;
  int carry, want_xattrs;
  /* With want_files: the regular files emitted in full (a hard-linked inode's first path only),
   * their absolute paths NUL-terminated back to back, and their sizes (u64 each). */
  int want_files;
  bytes_t files, sizes;
  uint64_t *links; /* (dev, ino) pairs of hard-linked files seen, open addressing */
  size_t links_cap, links_used;
  /* The entry's extended attributes as read ahead by a prefetch thread (put_xattrs_to's block), or NULL. */
  const unsigned char *xpre;
  size_t xpre_len;
  /* The open run of carried entries: consecutive previous identity lines. */
  int in_run;
  uint32_t run_id_start, run_id_end, run_vol_start, run_count, run_files;
  uint64_t run_bytes;
  /* The previous entry under the cursor: its path (decoded), or no previous entry left. */
  char ppath[MAX_PATH];
  long ppath_len;
  int pvalid;
  /* An error: errno and the path it happened on. */
  int err;
  const char *err_call;
  char err_path[MAX_PATH];
  unsigned char vtpl[VT_MAX]; /* the volatile line's template (see volatile_line) */
  size_t vtpl_len;
} tree_t;

/* Moves the previous-manifest cursor to the next entry (or past the end). */
static void prev_next(tree_t *t) {
  if (t->pvalid) {
    const char *nl = memchr(t->pid + t->pid_at, '\n', t->pid_len - t->pid_at);
    const char *vnl = memchr(t->pvol + t->pvol_at, '\n', t->pvol_len - t->pvol_at);
    if (nl == NULL || vnl == NULL) {
      t->pvalid = 0;
      return;
    }
    t->pid_at = (size_t)(nl - t->pid) + 1;
    t->pvol_at = (size_t)(vnl - t->pvol) + 1;
  }
  t->pvalid = 0;
  /* Only whole lines (each part ending in a newline) are matched and carried. */
  if (t->pid_at >= t->pid_len || t->pvol_at >= t->pvol_len) return;
  const char *l = t->pid + t->pid_at;
  const char *nl = memchr(l, '\n', t->pid_len - t->pid_at);
  if (nl == NULL || memchr(t->pvol + t->pvol_at, '\n', t->pvol_len - t->pvol_at) == NULL) return;
  t->ppath_len = line_path(l, (size_t)(nl - l), t->ppath);
  t->pvalid = 1;
}

/*
 * The extended attributes of an entry described in full, appended to t->xattrs: u32 length of
 * the block, then per attribute u16 name length, the name, u32 value length, the value. A
 * failure is u32 0xffffffff and the errno (the caller warns, or reports a vanished entry).
 */
static void put_xattrs_to(bytes_t *x, const char *abs) {
  char small[1024];
  char *names = small;
  ssize_t n = llistxattr(abs, small, sizeof small);
  if (n < 0 && errno == ERANGE) {
    ssize_t want = llistxattr(abs, NULL, 0);
    names = want > 0 ? malloc((size_t)want) : NULL;
    n = names != NULL ? llistxattr(abs, names, (size_t)want) : -1;
  }
  if (n < 0) {
    int e = errno;
    if (names != small) free(names);
    if (e == ENOTSUP) {
      b_u32(x, 0);
      return;
    }
    b_u32(x, 0xffffffffu);
    b_u32(x, (uint32_t)e);
    return;
  }
  size_t len_at = x->len;
  b_u32(x, 0);
  for (ssize_t off = 0; off < n;) {
    const char *name = names + off;
    size_t nl = strnlen(name, (size_t)(n - off));
    off += (ssize_t)nl + 1;
    char vsmall[1024];
    char *v = vsmall;
    ssize_t vn = lgetxattr(abs, name, vsmall, sizeof vsmall);
    if (vn < 0 && errno == ERANGE) {
      ssize_t want = lgetxattr(abs, name, NULL, 0);
      v = want > 0 ? malloc((size_t)want) : NULL;
      vn = v != NULL ? lgetxattr(abs, name, v, (size_t)want) : -1;
    }
    if (vn < 0) {
      int e = errno;
      if (v != vsmall) free(v);
      if (e == ENODATA) continue; /* removed meanwhile */
      x->len = len_at;
      b_u32(x, 0xffffffffu);
      b_u32(x, (uint32_t)e);
      if (names != small) free(names);
      return;
    }
    uint16_t n16 = (uint16_t)nl;
    b_put(x, &n16, 2);
    b_put(x, name, nl);
    b_u32(x, (uint32_t)vn);
    b_put(x, v, (size_t)vn);
    if (v != vsmall) free(v);
  }
  if (names != small) free(names);
  if (!x->failed) {
    uint32_t block = (uint32_t)(x->len - len_at - 4);
    memcpy(x->p + len_at, &block, 4);
  }
}

/* Ends the open run of carried entries: op 0 with its identity and volatile ranges and counts. */
static void run_close(tree_t *t) {
  if (!t->in_run) return;
  t->in_run = 0;
  b_u8(&t->ops, 0);
  b_u32(&t->ops, t->run_id_start);
  b_u32(&t->ops, t->run_id_end);
  b_u32(&t->ops, t->run_vol_start);
  b_u32(&t->ops, (uint32_t)t->vol.len);
  b_u32(&t->ops, t->run_count);
  b_u32(&t->ops, t->run_files);
  b_u64(&t->ops, t->run_bytes);
}

/* One walked entry: carried (the previous entry with the same path, unchanged) or in full. */
/* 1 when this (dev, ino) was not seen before (and is now), 0 when it was; -1 out of memory. */
static int link_first(tree_t *t, uint64_t dev, uint64_t ino) {
  if (t->links_used * 2 >= t->links_cap) {
    size_t cap = t->links_cap ? t->links_cap * 2 : 256;
    uint64_t *g = calloc(cap * 2, sizeof *g);
    if (g == NULL) return -1;
    for (size_t i = 0; i < t->links_cap; i++) {
      uint64_t d = t->links[2 * i], n = t->links[2 * i + 1];
      if (d == 0 && n == 0) continue;
      size_t h = (size_t)((n * 0x9e3779b97f4a7c15ull) ^ d) & (cap - 1);
      while (g[2 * h] != 0 || g[2 * h + 1] != 0) h = (h + 1) & (cap - 1);
      g[2 * h] = d, g[2 * h + 1] = n;
    }
    free(t->links);
    t->links = g;
    t->links_cap = cap;
  }
  /* (0, 0) marks an empty slot: store dev + 1 */
  uint64_t d = dev + 1;
  size_t h = (size_t)((ino * 0x9e3779b97f4a7c15ull) ^ d) & (t->links_cap - 1);
  for (;; h = (h + 1) & (t->links_cap - 1)) {
    if (t->links[2 * h] == 0 && t->links[2 * h + 1] == 0) {
      t->links[2 * h] = d, t->links[2 * h + 1] = ino;
      t->links_used++;
      return 1;
    }
    if (t->links[2 * h] == d && t->links[2 * h + 1] == ino) return 0;
  }
}

static void emit(tree_t *t, const char *abs, const char *rel, size_t rel_len, const struct stat *st) {
  int carried = 0;
  t->entries++;
  if (t->pid != NULL) {
    /* Skip previous entries that come before this one in walk order (they were removed). */
    while (t->pvalid && t->ppath_len >= 0 && cmp_walk(t->ppath, (size_t)t->ppath_len, rel, rel_len) < 0) prev_next(t);
    if (t->pvalid && t->ppath_len == (long)rel_len && memcmp(t->ppath, rel, rel_len) == 0) {
      const char *pl = t->pvol + t->pvol_at;
      const char *pnl = memchr(pl, '\n', t->pvol_len - t->pvol_at);
      size_t pn = pnl ? (size_t)(pnl - pl) : t->pvol_len - t->pvol_at;
      if (t->carry && (S_ISDIR(st->st_mode) || st->st_nlink == 1) && same_but_atime(t->vtpl, t->vtpl_len, pl, pn, st)) carried = 1;
      if (carried) {
        const char *il = t->pid + t->pid_at;
        const char *inl = memchr(il, '\n', t->pid_len - t->pid_at);
        uint32_t id_start = (uint32_t)t->pid_at, id_end = (uint32_t)(inl - t->pid) + 1; /* prev_next saw the newline */
        if (!t->in_run || t->run_id_end != id_start) {
          run_close(t);
          t->in_run = 1;
          t->run_id_start = id_start;
          t->run_vol_start = (uint32_t)t->vol.len;
          t->run_count = t->run_files = 0;
          t->run_bytes = 0;
        }
        t->run_id_end = id_end;
        t->run_count++;
        if (S_ISREG(st->st_mode)) {
          t->run_files++;
          t->run_bytes += (uint64_t)st->st_size;
        }
        char line[256];
        b_put(&t->vol, line, volatile_line(t->vtpl, t->vtpl_len, line, st));
        b_u8(&t->vol, '\n');
      }
      prev_next(t);
    } else if (t->pvalid && t->ppath_len < 0) {
      /* A previous path that cannot be decoded stops the matching: the rest is new. */
      t->pvalid = 0;
    }
  }
  if (!carried) {
    run_close(t);
    b_u8(&t->ops, 1);
  }
  if (!carried) {
    uint16_t n16 = (uint16_t)rel_len;
    b_put(&t->full, &n16, 2);
    b_put(&t->full, rel, rel_len);
    uint64_t f[SCAN_FIELDS] = {st->st_mode, st->st_uid, st->st_gid, (uint64_t)st->st_size, (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec, (uint64_t)st->st_atim.tv_sec,
                               (uint64_t)st->st_atim.tv_nsec, (uint64_t)st->st_ctim.tv_sec, (uint64_t)st->st_ctim.tv_nsec, st->st_ino, st->st_dev, st->st_nlink, st->st_rdev};
    b_put(&t->full, f, sizeof f);
    if (t->want_xattrs) {
      if (t->xpre != NULL) b_put(&t->xattrs, t->xpre, t->xpre_len);
      else put_xattrs_to(&t->xattrs, abs);
    }
    if (t->want_files && S_ISREG(st->st_mode)) {
      int first = st->st_nlink > 1 ? link_first(t, (uint64_t)st->st_dev, (uint64_t)st->st_ino) : 1;
      if (first < 0) t->files.failed = 1;
      else if (first) {
        b_put(&t->files, abs, strlen(abs) + 1);
        b_u64(&t->sizes, (uint64_t)st->st_size);
      }
    }
  }
}

static void tree_fail(tree_t *t, const char *call, const char *path, int e) {
  if (t->err) return;
  t->err = e;
  t->err_call = call;
  snprintf(t->err_path, sizeof t->err_path, "%s", path);
}

/* The children of directory `abs` (relative path rel), each emitted and, when a directory, walked. */
static void walk_dir(tree_t *t, char *abs, size_t abs_len, char *rel, size_t rel_len) {
  listing_t l;
  const char *failed;
  int e = list_dir(abs, &l, &failed);
  if (e != 0) return tree_fail(t, failed, abs, e);
  /* Every child's lstat first (as the JavaScript walk does), then each child in turn; the
   * directory is closed before descending, so a deep tree does not hold a descriptor a level. */
  struct stat *sts = malloc((l.count + 1) * sizeof *sts);
  if (sts == NULL) {
    listing_close(&l);
    return tree_fail(t, "scandir", abs, ENOMEM);
  }
  for (size_t i = 0; i < l.count; i++) {
    if (fstatat(l.dfd, l.names[i], &sts[i], AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {
        l.names[i] = NULL; /* vanished meanwhile */
        continue;
      }
      tree_fail(t, "fstatat", abs, errno);
      l.count = 0;
      break;
    }
  }
  closedir(l.dir);
  l.dir = NULL;
  for (size_t i = 0; i < l.count && !t->err; i++) {
    if (l.names[i] == NULL) continue;
    size_t nl = strlen(l.names[i]);
    if (abs_len + 1 + nl >= MAX_PATH || rel_len + 1 + nl >= MAX_PATH || nl > 0xffff) {
      tree_fail(t, "scandir", abs, ENAMETOOLONG);
      break;
    }
    size_t al = abs_len, rl = rel_len;
    if (al == 0 || abs[al - 1] != '/') abs[al++] = '/';
    memcpy(abs + al, l.names[i], nl + 1);
    if (rl > 0) rel[rl++] = '/';
    memcpy(rel + rl, l.names[i], nl + 1);
    emit(t, abs, rel, rl + nl, &sts[i]);
    if (S_ISDIR(sts[i].st_mode)) walk_dir(t, abs, al + nl, rel, rl + nl);
    abs[abs_len] = 0;
    rel[rel_len] = 0;
  }
  free(sts);
  listing_close(&l);
}

/*
 * Read-ahead for scanTree: threads list directories (names and each entry's lstat, and with no
 * previous snapshot to match, each entry's extended attributes) ahead of the walk, which then
 * takes every directory's listing from memory in walk order. The system calls of a large tree
 * spread over the cores; what the walk emits is unchanged. Directories are handed out newest
 * first, so the listings the depth-first walk needs next tend to be ready.
 */
typedef struct pnode {
  listing_t l;            /* names (the directory itself is closed once listed) */
  struct stat *sts;       /* per name */
  struct pnode **kids;    /* per name: the node of a subdirectory, or NULL */
  bytes_t x;              /* read-ahead extended attributes: one put_xattrs_to block per name */
  size_t *xoff;           /* per name: its block's offset in x (count + 1 offsets) */
  char *path;             /* absolute path, until listed */
  int err;
  const char *err_call;
  int ready;
  struct pnode *next_job; /* in the stack of directories to list */
  struct pnode *next_all; /* every node, to free them all at the end */
} pnode;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t job_cv, ready_cv;
  pnode *stack, *all;
  int active, stop, want_xattrs;
} prefetch_t;

static void pnode_release(pnode *n) {
  listing_close(&n->l);
  free(n->sts), free(n->kids), free(n->x.p), free(n->xoff), free(n->path);
  n->sts = NULL, n->kids = NULL, n->x.p = NULL, n->xoff = NULL, n->path = NULL;
}

static void prefetch_list(prefetch_t *pf, pnode *n) {
  const char *failed;
  int e = list_dir(n->path, &n->l, &failed);
  pnode *kids = NULL;
  if (e != 0) {
    n->err = e;
    n->err_call = failed;
  } else {
    n->sts = malloc((n->l.count + 1) * sizeof *n->sts);
    n->kids = calloc(n->l.count + 1, sizeof *n->kids);
    n->xoff = pf->want_xattrs ? malloc((n->l.count + 1) * sizeof *n->xoff) : NULL;
    if (n->sts == NULL || n->kids == NULL || (pf->want_xattrs && n->xoff == NULL)) {
      n->err = ENOMEM;
      n->err_call = "scandir";
    }
    size_t plen = strlen(n->path);
    for (size_t i = 0; i < n->l.count && !n->err; i++) {
      if (fstatat(n->l.dfd, n->l.names[i], &n->sts[i], AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
          n->l.names[i] = NULL; /* vanished meanwhile */
          if (n->xoff != NULL) n->xoff[i] = n->x.len;
          continue;
        }
        n->err = errno;
        n->err_call = "fstatat";
        break;
      }
      size_t nl = strlen(n->l.names[i]);
      int is_dir = S_ISDIR(n->sts[i].st_mode);
      char *child = NULL;
      if ((is_dir || n->xoff != NULL) && plen + 1 + nl < MAX_PATH) {
        child = malloc(plen + nl + 2);
        if (child != NULL) {
          memcpy(child, n->path, plen);
          size_t at = plen;
          if (at == 0 || child[at - 1] != '/') child[at++] = '/';
          memcpy(child + at, n->l.names[i], nl + 1);
        }
      }
      if (n->xoff != NULL) {
        n->xoff[i] = n->x.len;
        if (child != NULL) put_xattrs_to(&n->x, child);
      }
      if (is_dir && child != NULL) {
        pnode *k = calloc(1, sizeof *k);
        if (k != NULL) {
          k->path = child;
          child = NULL;
          k->next_job = kids;
          kids = k;
          n->kids[i] = k;
        }
      }
      free(child);
    }
    if (n->xoff != NULL) n->xoff[n->l.count] = n->x.len;
    if (n->l.dir != NULL) closedir(n->l.dir);
    n->l.dir = NULL;
    if (n->x.failed) {
      n->err = ENOMEM;
      n->err_call = "llistxattr";
    }
  }
  free(n->path);
  n->path = NULL;
  pthread_mutex_lock(&pf->mu);
  /* kids is in reverse name order: pushing it in that order leaves the first name on top */
  while (kids != NULL) {
    pnode *k = kids;
    kids = k->next_job;
    k->next_all = pf->all;
    pf->all = k;
    k->next_job = pf->stack;
    pf->stack = k;
  }
  n->ready = 1;
  pthread_cond_broadcast(&pf->ready_cv);
  pthread_cond_broadcast(&pf->job_cv);
  pthread_mutex_unlock(&pf->mu);
}

static void *prefetch_run(void *arg) {
  prefetch_t *pf = arg;
  pthread_mutex_lock(&pf->mu);
  for (;;) {
    while (!pf->stop && pf->stack == NULL && pf->active > 0) pthread_cond_wait(&pf->job_cv, &pf->mu);
    if (pf->stop || pf->stack == NULL) break; /* stopped, or nothing left to list by anyone */
    pnode *n = pf->stack;
    pf->stack = n->next_job;
    pf->active++;
    pthread_mutex_unlock(&pf->mu);
    prefetch_list(pf, n);
    pthread_mutex_lock(&pf->mu);
    pf->active--;
    if (pf->active == 0 && pf->stack == NULL) pthread_cond_broadcast(&pf->job_cv);
  }
  pthread_mutex_unlock(&pf->mu);
  return NULL;
}

/* walk_dir over read-ahead listings. */
static void walk_node(tree_t *t, prefetch_t *pf, pnode *n, char *abs, size_t abs_len, char *rel, size_t rel_len) {
  pthread_mutex_lock(&pf->mu);
  while (!n->ready) pthread_cond_wait(&pf->ready_cv, &pf->mu);
  pthread_mutex_unlock(&pf->mu);
  if (n->err) {
    pnode_release(n);
    return tree_fail(t, n->err_call, abs, n->err);
  }
  for (size_t i = 0; i < n->l.count && !t->err; i++) {
    if (n->l.names[i] == NULL) continue;
    size_t nl = strlen(n->l.names[i]);
    if (abs_len + 1 + nl >= MAX_PATH || rel_len + 1 + nl >= MAX_PATH || nl > 0xffff) {
      tree_fail(t, "scandir", abs, ENAMETOOLONG);
      break;
    }
    size_t al = abs_len, rl = rel_len;
    if (al == 0 || abs[al - 1] != '/') abs[al++] = '/';
    memcpy(abs + al, n->l.names[i], nl + 1);
    if (rl > 0) rel[rl++] = '/';
    memcpy(rel + rl, n->l.names[i], nl + 1);
    if (n->xoff != NULL) {
      t->xpre = n->x.p + n->xoff[i];
      t->xpre_len = n->xoff[i + 1] - n->xoff[i];
    }
    emit(t, abs, rel, rl + nl, &n->sts[i]);
    t->xpre = NULL;
    if (S_ISDIR(n->sts[i].st_mode)) {
      if (n->kids[i] != NULL) walk_node(t, pf, n->kids[i], abs, al + nl, rel, rl + nl);
      else tree_fail(t, "scandir", abs, ENOMEM);
    }
    abs[abs_len] = 0;
    rel[rel_len] = 0;
  }
  pnode_release(n);
}

/* The walk of a directory with `threads` read-ahead threads (the walk itself runs here). */
static void walk_prefetched(tree_t *t, char *abs, size_t abs_len, char *rel, size_t rel_len, int threads) {
  prefetch_t pf;
  memset(&pf, 0, sizeof pf);
  pthread_mutex_init(&pf.mu, NULL);
  pthread_cond_init(&pf.job_cv, NULL);
  pthread_cond_init(&pf.ready_cv, NULL);
  pf.want_xattrs = t->want_xattrs && t->pid == NULL; /* with a previous snapshot, most entries are carried: no read-ahead */
  pnode *root = calloc(1, sizeof *root);
  pthread_t tids[8];
  int started = 0;
  if (root == NULL || (root->path = strdup(abs)) == NULL) {
    free(root);
    return tree_fail(t, "scandir", abs, ENOMEM);
  }
  pf.all = root;
  pf.stack = root;
  for (int i = 0; i < threads && i < 8; i++, started++)
    if (pthread_create(&tids[i], NULL, prefetch_run, &pf) != 0) break;
  if (started == 0) {
    /* no thread: list everything here first */
    prefetch_run(&pf);
  }
  walk_node(t, &pf, root, abs, abs_len, rel, rel_len);
  pthread_mutex_lock(&pf.mu);
  pf.stop = 1;
  pthread_cond_broadcast(&pf.job_cv);
  pthread_mutex_unlock(&pf.mu);
  for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
  for (pnode *n = pf.all, *next; n != NULL; n = next) {
    next = n->next_all;
    pnode_release(n);
    free(n);
  }
  pthread_cond_destroy(&pf.ready_cv);
  pthread_cond_destroy(&pf.job_cv);
  pthread_mutex_destroy(&pf.mu);
}

/*
 * scanTree(root, prevIdentity, prevVolatile, carry, xattrs, threads, files, volatileTemplate) -> [count, ops, full, volatile, xattrs[, files, sizes]]
 * `threads`: how many threads list directories ahead of the walk (see walk_prefetched); 0: one a
 * core, at most 4; 1: none, the walk lists each directory itself. `volatileTemplate`: the volatile
 * line's template (see volatile_line), from the TypeScript codec. With `files`
 * true, two more Buffers: the absolute paths of the regular files described in full (of the paths
 * of a hard-linked inode, the first in walk order), NUL-terminated back to back, and their sizes
 * (u64 each): what a first snapshot reads, ready before any JavaScript looks at the records.
 * The whole tree under root in walk order (depth first, names in byte order, symlinks not
 * followed; the root itself first, with the path ""). When the previous snapshot's identity and
 * volatile lines are given (Buffers, one line per entry, same walk order), each entry is matched
 * to the previous entry with its path (an identity line is a JSON array whose first element is
 * the path) by a merge of the two orders; an entry that is a directory
 * or has one link, and whose mtime, ctime, inode, device and link count are what the previous
 * line says, is "carried" (with `carry` true).
 * Result: [entry count, ops, full, volatile, xattrs] (four Buffers):
 *   ops: in walk order, u8 1 for an entry in full, or u8 0 for a run of carried entries whose
 *     previous identity lines follow each other: u32 identity start and end (byte offsets in
 *     prevIdentity), u32 volatile start and end (in the volatile section below), u32 entries,
 *     u32 regular files, u64 bytes of those files;
 *   full: per entry in full, as scandir's records with the relative path as the name;
 *   volatile: per carried entry, its new volatile line and a newline;
 *   xattrs: with `xattrs` true, per entry in full, its extended attributes (see put_xattrs_to).
 */
napi_value js_scan_tree(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  size_t argc = 8;
  int32_t threads = 0;
  bool want_files = false;
  char *abs = malloc(MAX_PATH), *rel = malloc(MAX_PATH);
  tree_t *t = calloc(1, sizeof *t);
  napi_value result = NULL;
  if (abs == NULL || rel == NULL || t == NULL) {
    free(abs), free(rel), free(t);
    return throw_errno(env, "scanTree", "", ENOMEM);
  }
  bool carry = false, want_xattrs = false;
  napi_valuetype vt1, vt2;
  void *tpl = NULL;
  size_t tpl_len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 8 || napi_get_value_int32(env, argv[5], &threads) != napi_ok || threads < 0 ||
      napi_get_value_bool(env, argv[6], &want_files) != napi_ok || napi_get_buffer_info(env, argv[7], &tpl, &tpl_len) != napi_ok || tpl_len == 0 || tpl_len > VT_MAX ||
      get_string(env, argv[0], abs, MAX_PATH) || napi_typeof(env, argv[1], &vt1) != napi_ok || napi_typeof(env, argv[2], &vt2) != napi_ok ||
      napi_get_value_bool(env, argv[3], &carry) != napi_ok || napi_get_value_bool(env, argv[4], &want_xattrs) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "scanTree(root, prevIdentity, prevVolatile, carry, xattrs, threads, files, volatileTemplate)");
    goto out;
  }
  memcpy(t->vtpl, tpl, tpl_len);
  t->vtpl_len = tpl_len;
  t->want_xattrs = want_xattrs;
  t->want_files = want_files;
  if (vt1 == napi_object && vt2 == napi_object) {
    void *a = NULL, *b = NULL;
    size_t an = 0, bn = 0;
    if (napi_get_buffer_info(env, argv[1], &a, &an) != napi_ok || napi_get_buffer_info(env, argv[2], &b, &bn) != napi_ok) {
      napi_throw_type_error(env, "EINVAL", "scanTree: the previous lines must be Buffers");
      goto out;
    }
    t->pid = a, t->pid_len = an, t->pvol = b, t->pvol_len = bn;
    t->carry = carry;
    prev_next(t);
  }
  struct stat st;
  if (lstat(abs, &st) != 0) {
    throw_errno(env, "lstat", abs, errno);
    goto out;
  }
  rel[0] = 0;
  emit(t, abs, rel, 0, &st);
  if (S_ISDIR(st.st_mode)) {
    long cores = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 1) walk_prefetched(t, abs, strlen(abs), rel, 0, cores > 4 ? 4 : (int)cores);
    else walk_dir(t, abs, strlen(abs), rel, 0);
  }
  run_close(t);
  if (t->err) {
    throw_errno(env, t->err_call, t->err_path, t->err);
    goto out;
  }
  if (t->ops.failed || t->full.failed || t->vol.failed || t->xattrs.failed || t->files.failed || t->sizes.failed) {
    throw_errno(env, "scanTree", abs, ENOMEM);
    goto out;
  }
  /* The three parts handed over without a copy (a large tree's records are hundreds of MB). */
  napi_value parts[6], count;
  bytes_t *bs[6] = {&t->ops, &t->full, &t->vol, &t->xattrs, &t->files, &t->sizes};
  for (int k = 0; k < 6; k++) {
    void *data = NULL;
    if (bs[k]->len == 0) {
      if (napi_create_buffer(env, 0, &data, &parts[k]) != napi_ok) goto out;
      continue;
    }
    if (napi_create_external_buffer(env, bs[k]->len, bs[k]->p, free_malloced, NULL, &parts[k]) != napi_ok) goto out;
    bs[k]->p = NULL; /* owned by the Buffer now */
  }
  if (napi_create_array_with_length(env, 7, &result) != napi_ok || napi_create_uint32(env, t->entries, &count) != napi_ok) {
    result = NULL;
    goto out;
  }
  napi_set_element(env, result, 0, count);
  for (int k = 0; k < 6; k++) napi_set_element(env, result, (uint32_t)k + 1, parts[k]);
out:
  free(t->ops.p), free(t->full.p), free(t->vol.p), free(t->xattrs.p), free(t->files.p), free(t->sizes.p), free(t->links);
  free(t), free(abs), free(rel);
  return result;
}
