/*
 * The snapshot content pipeline (packFiles) and zstd for the store's manifests:
 *   zstdDecompress(buffer, size) -> Buffer; zstdDecompressAsync(buffer, size), zstdCompressAsync(buffer, level)
 *     -> Promise<Buffer> (on the libuv thread pool: a diff decompresses two manifests at once)
 *   packFiles(...) -> Promise (see below)
 * Only bytes, digests and compressed chunks come out of here: the store's formats (records,
 * chunk methods, index) are defined once, in src/formats/snapstore/, and written by the caller.
 */
#include "common.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <zstd.h>

napi_value js_zstd_decompress(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *src = NULL;
  size_t len = 0;
  int64_t size = 0;
  if (get_args(env, info, 2, argv) || napi_get_buffer_info(env, argv[0], &src, &len) != napi_ok || napi_get_value_int64(env, argv[1], &size) != napi_ok || size < 0) {
    napi_throw_type_error(env, "EINVAL", "zstdDecompress(buffer, size)");
    return NULL;
  }
  napi_value out;
  void *dst = NULL;
  if (napi_create_buffer(env, (size_t)size, &dst, &out) != napi_ok) return NULL;
  size_t n = ZSTD_decompress(dst, (size_t)size, src, len);
  if (ZSTD_isError(n) || n != (size_t)size) {
    napi_throw_error(env, "EIO", ZSTD_isError(n) ? ZSTD_getErrorName(n) : "zstd: wrong decompressed size");
    return NULL;
  }
  return out;
}

/* zstdDecompressAsync(buffer, size) -> Promise<Buffer>: zstdDecompress on the libuv thread pool
 * (two manifests of a diff are decompressed at once). */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input;
  void *src;
  size_t len;
  size_t size;
  void *dst;
  const char *err;
  int compress, level; /* zstdCompressAsync: compress src at level (size becomes the output's) */
} zjob;

static void zjob_execute(napi_env env, void *data) {
  (void)env;
  zjob *j = data;
  if (j->compress) {
    size_t cap = ZSTD_compressBound(j->len);
    j->dst = malloc(cap);
    if (j->dst == NULL) {
      j->err = "out of memory";
      return;
    }
    size_t n = ZSTD_compress(j->dst, cap, j->src, j->len, j->level);
    if (ZSTD_isError(n)) j->err = ZSTD_getErrorName(n);
    else j->size = n;
    return;
  }
  j->dst = malloc(j->size > 0 ? j->size : 1);
  if (j->dst == NULL) {
    j->err = "out of memory";
    return;
  }
  size_t n = ZSTD_decompress(j->dst, j->size, j->src, j->len);
  if (ZSTD_isError(n)) j->err = ZSTD_getErrorName(n);
  else if (n != j->size) j->err = "zstd: wrong decompressed size";
}


static void zjob_complete(napi_env env, napi_status status, void *data) {
  zjob *j = data;
  napi_value result;
  if (status != napi_ok || j->err != NULL) {
    napi_value msg, code;
    napi_create_string_utf8(env, j->err != NULL ? j->err : "cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, "EIO", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &result);
    napi_reject_deferred(env, j->deferred, result);
    free(j->dst);
  } else if (j->size == 0) {
    void *none = NULL;
    free(j->dst);
    if (napi_create_buffer(env, 0, &none, &result) != napi_ok) napi_get_undefined(env, &result);
    napi_resolve_deferred(env, j->deferred, result);
  } else if (napi_create_external_buffer(env, j->size, j->dst, free_malloced, NULL, &result) == napi_ok) {
    napi_resolve_deferred(env, j->deferred, result);
  } else {
    free(j->dst);
    napi_get_undefined(env, &result);
    napi_reject_deferred(env, j->deferred, result);
  }
  napi_delete_reference(env, j->input);
  napi_delete_async_work(env, j->work);
  free(j);
}

/*
 * zstdDecompressAsync(buffer, size) and zstdCompressAsync(buffer, level) -> Promise<Buffer>: the
 * same as their synchronous forms, on the libuv thread pool. `compress` picks which; the second
 * argument is the decompressed size or the level.
 */
static napi_value zjob_start(napi_env env, napi_callback_info info, int compress) {
  const char *usage = compress ? "zstdCompressAsync(buffer, level)" : "zstdDecompressAsync(buffer, size)";
  napi_value argv[2];
  zjob *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, compress ? "zstdCompressAsync" : "zstdDecompressAsync", "", ENOMEM);
  int64_t n = 0;
  if (get_args(env, info, 2, argv) || napi_get_buffer_info(env, argv[0], &j->src, &j->len) != napi_ok || napi_get_value_int64(env, argv[1], &n) != napi_ok ||
      (compress ? (n < -131072 || n > 22) : n < 0)) {
    free(j);
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  j->compress = compress;
  if (compress) j->level = (int)n;
  else j->size = (size_t)n;
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_reference(env, argv[0], 1, &j->input); /* keep the input alive while the pool reads it */
  napi_create_string_utf8(env, compress ? "zstdCompress" : "zstdDecompress", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, zjob_execute, zjob_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

napi_value js_zstd_decompress_async(napi_env env, napi_callback_info info) { return zjob_start(env, info, 0); }

napi_value js_zstd_compress_async(napi_env env, napi_callback_info info) { return zjob_start(env, info, 1); }

/*
 * packFiles(paths, count, keep, packPath, start, known, knownStride, progress, level, threads[, results])
 *   -> Promise of [results, chunks, end, failedIndex, errnoName, syscall]
 * The content half of a snapshot, on native threads: every file of a list is read and hashed
 * (sha256, by the OpenSSL that Node carries), and, when it is to be kept and is neither known
 * (`known`: sorted tables whose entries begin with a sha256, `knownStride` bytes apart) nor
 * already taken by this run, written to the pack: compressed with zstd at `level` when that
 * saves a tenth, raw otherwise; files up to 128 KiB gathered a thread at a time into shared
 * frames of about 1 MiB. This code knows no store format: the caller writes the records and the
 * index from what it returns. `paths` holds `count` NUL-terminated paths; `keep` one byte a file
 * (1: store, 0: hash only). Pack writes use O_DIRECT where the file system takes it (buffered
 * otherwise): each starts on a 4096-byte boundary at an offset taken from a counter that starts
 * at `start`, and is padded to a multiple of 4096; meanwhile a thread of its own syncs what was
 * written, every 32 MiB (pf_flusher). `progress` (two doubles: files, bytes) is updated as files
 * finish.
 * results: 80 bytes a file: sha256 (0, 32), size read u64 (32), the first 20 bytes (40), chunk
 *   count u32 (60), fresh u8 (64: 1 when this file's content went into the pack), smallest byte
 *   of the first 8 KiB (65; 255 when empty), first byte of the first 8 KiB that is not a space,
 *   tab, CR or LF (66; 0 when none), done u8 (79). Given `results` (a zeroed Buffer of count * 80
 *   bytes), each record is written there as soon as its file is done, the done byte last.
 * chunks: 40 bytes a chunk of each fresh file, in file order: pack offset u64, stored size u64,
 *   raw size u64, slice start u32 (24), slice length u32 (28), compressed u8 (32), shared u8 (33:
 *   a slice of a frame that small files share; offset, stored and raw are then the frame's).
 * end: the pack offset after the last write. failedIndex: -1, or the file that could not be read
 * (-2: the pack could not be written), with the errno name and the failing call.
 * Large files (4 MiB or more) are compressed chunk by chunk as they are read, before their hash
 * is known; when the content turns out to be known already, those chunks stay in the pack
 * unreferenced (rare: an unchanged file is not read at all).
 */
#include <openssl/evp.h>
#include <openssl/opensslv.h>


#define PF_CHUNK (4u << 20)
/* Files up to PF_SMALL bytes are gathered into groups of about PF_GROUP bytes, each compressed as
 * one zstd frame: small files alone compress worse and slower (no history, a table a file). */
#define PF_SMALL (128u << 10)
#define PF_GROUP (1u << 20)
#define PF_GROUP_CAP (PF_GROUP + PF_SMALL + 1)
#define PF_OUT_CAP (PF_CHUNK + (PF_CHUNK >> 7) + 65536)
/* The transfer layouts of results and chunks (see above): the addon's interface, not a store format. */
#define PF_RESULT 80
#define PF_CHUNK_DESC 40
#define PF_HEAD 8192

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static EVP_MD *pf_md = NULL;
static pthread_once_t pf_md_once = PTHREAD_ONCE_INIT;
static void pf_md_fetch(void) { pf_md = EVP_MD_fetch(NULL, "SHA256", NULL); }
#endif

/* SHA-256 through EVP (Node's OpenSSL, whose symbols the node binary exports to addons). */
static const EVP_MD *pf_sha256(void) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  /* fetched once: an implicit fetch at every init costs a lookup per file */
  pthread_once(&pf_md_once, pf_md_fetch);
  return pf_md != NULL ? pf_md : EVP_sha256();
#else
  return EVP_sha256();
#endif
}

typedef struct {
  uint64_t offset, stored, raw;
  uint8_t compressed;
  uint8_t shared;      /* a slice [start, start + len) of a frame small files share */
  uint8_t placed;      /* written on its own: offset is already the pack offset */
  uint32_t start, len;
} pf_chunk;

/* A small file waiting in a group: its content is grp[start, start + len). */
typedef struct {
  uint32_t index, start, len;
} pf_member;

typedef struct {
  unsigned char sha[32];
  uint64_t size;
  unsigned char head[20]; /* the first bytes, and two facts of the first 8 KiB (see above) */
  uint8_t min_byte, non_space, fresh;
  int thread;       /* whose chunk list holds this file's chunks */
  uint32_t first, count;
} pf_file;

typedef struct pf_job pf_job;

typedef struct {
  pf_job *job;
  int id;
  unsigned char *in;
  unsigned char *out;
  size_t used;
  pf_chunk *chunks;
  size_t nchunks, capchunks;
  size_t pending_from; /* chunks from here on wait for the next flush to know their offset */
  /* the group of small files being gathered (compressed together as one frame) */
  unsigned char *grp;
  size_t gused;
  pf_member *members;
  size_t nmembers, capmembers;
  ZSTD_CCtx *cctx;
  EVP_MD_CTX *md;
  pthread_t tid;
} pf_thread;

struct pf_job {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref refs[5];
  unsigned char *live; /* the caller's results buffer, filled as files finish (or NULL) */
  int nrefs;
  const char **paths;
  const uint8_t *keep;
  uint32_t count;
  char *pack_path;
  int fd;           /* the pack, opened with O_DIRECT when the file system takes it */
  int buffered_fd;  /* the pack without O_DIRECT, once a direct write was refused */
  int direct;
  pthread_mutex_t lock;
  uint64_t end;
  const unsigned char **tables;
  uint64_t *table_counts;
  uint32_t ntables;
  uint32_t stride;
  double *progress;
  int level;
  int nthreads;
  uint32_t next;
  int stop;
  /* this run's objects: open addressing on the digest, under `lock` */
  unsigned char *seen;
  uint8_t *seen_used;
  size_t seen_cap;
  pf_file *files;
  pf_thread *threads;
  int64_t failed;
  int err;
  const char *syscall;
  /* the flusher: syncs the pack's data while the threads still compute (see pf_flusher) */
  pthread_mutex_t flush_lock;
  pthread_cond_t flush_cond;
  int flush_stop;
};

static int pf_in_store(pf_job *j, const unsigned char *sha) {
  for (uint32_t t = 0; t < j->ntables; t++) {
    uint64_t lo = 0, hi = j->table_counts[t];
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      int c = memcmp(j->tables[t] + mid * j->stride, sha, 32);
      if (c == 0) return 1;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
  }
  return 0;
}

/* 1 when the digest is new to this run (and now taken by the caller), 0 when taken before. */
static int pf_take(pf_job *j, const unsigned char *sha) {
  pthread_mutex_lock(&j->lock);
  size_t mask = j->seen_cap - 1;
  size_t i;
  memcpy(&i, sha, sizeof i);
  for (i &= mask;; i = (i + 1) & mask) {
    if (!j->seen_used[i]) {
      memcpy(j->seen + i * 32, sha, 32);
      j->seen_used[i] = 1;
      pthread_mutex_unlock(&j->lock);
      return 1;
    }
    if (memcmp(j->seen + i * 32, sha, 32) == 0) {
      pthread_mutex_unlock(&j->lock);
      return 0;
    }
  }
}

static void pf_fail(pf_job *j, int64_t index, int e, const char *syscall) {
  pthread_mutex_lock(&j->lock);
  if (j->failed == -1) {
    j->failed = index;
    j->err = e;
    j->syscall = syscall;
  }
  __atomic_store_n(&j->stop, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&j->lock);
}

/* The facts of a file's head its kind follows from (src/formats/snapstore kindOfSample decides). */
static void pf_sample(pf_file *f, const unsigned char *h, size_t n) {
  memcpy(f->head, h, n < sizeof f->head ? n : sizeof f->head);
  if (n > PF_HEAD) n = PF_HEAD;
  unsigned char lo = 255;
  for (size_t i = 0; i < n && lo > 0; i++)
    if (h[i] < lo) lo = h[i];
  f->min_byte = lo;
  f->non_space = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned c = h[i];
    if (c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09) continue;
    f->non_space = (uint8_t)c;
    break;
  }
}

static int pf_write(pf_job *j, const unsigned char *buf, size_t len, uint64_t at) {
  size_t off = 0;
  while (off < len) {
    int direct = __atomic_load_n(&j->direct, __ATOMIC_ACQUIRE);
    ssize_t k = pwrite(direct ? j->fd : j->buffered_fd, buf + off, len - off, (off_t)(at + off));
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct) {
        /* The file system refuses direct writes: buffered ones from now on (the padding stays).
         * The direct descriptor stays open until the end: other threads may be using it. */
        int e = 0;
        pthread_mutex_lock(&j->lock);
        if (j->buffered_fd < 0) {
          j->buffered_fd = open(j->pack_path, O_WRONLY | O_CLOEXEC);
          if (j->buffered_fd < 0) e = errno;
        }
        if (e == 0) __atomic_store_n(&j->direct, 0, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&j->lock);
        if (e != 0) return e;
        continue;
      }
      return errno;
    }
    off += (size_t)k;
  }
  return 0;
}

static int pf_flush(pf_thread *t) {
  pf_job *j = t->job;
  if (t->used == 0) return 0;
  size_t len = (t->used + 4095) & ~(size_t)4095;
  memset(t->out + t->used, 0, len - t->used);
  uint64_t base = __atomic_fetch_add(&j->end, len, __ATOMIC_RELAXED);
  int e = pf_write(j, t->out, len, base);
  if (e != 0) return e;
  for (size_t i = t->pending_from; i < t->nchunks; i++)
    if (!t->chunks[i].placed) t->chunks[i].offset += base;
  t->pending_from = t->nchunks;
  t->used = 0;
  return 0;
}

static pf_chunk *pf_new_chunk(pf_thread *t) {
  if (t->nchunks == t->capchunks) {
    size_t cap = t->capchunks ? t->capchunks * 2 : 1024;
    pf_chunk *c = realloc(t->chunks, cap * sizeof *c);
    if (c == NULL) return NULL;
    t->chunks = c;
    t->capchunks = cap;
  }
  pf_chunk *c = &t->chunks[t->nchunks++];
  memset(c, 0, sizeof *c);
  return c;
}

/*
 * The group of small files out: compressed as one frame when that saves anything worth a frame
 * (a 64th: zstd keeps incompressible blocks raw inside the frame, so a group of mostly random files
 * still saves what its other files save); each file then has one chunk, method 3, its slice of
 * the frame. Else copied raw: each file a raw chunk.
 */
static int pf_incompressible_samples(pf_thread *t, const unsigned char *src, size_t n, int samples, size_t S);

static int pf_group_flush(pf_thread *t) {
  pf_job *j = t->job;
  size_t n = t->gused;
  if (t->nmembers == 0) {
    t->gused = 0;
    return 0;
  }
  if (t->used + ZSTD_compressBound(n) > PF_OUT_CAP) {
    int e = pf_flush(t);
    if (e != 0) return e;
  }
  size_t at = t->used;
  /* Eight 8 KiB samples across the group first: a group of random files (already compressed
   * data) is copied raw without compressing all of it; a group the samples can shrink by 3% is
   * compressed whole. */
  size_t k = 0;
  int framed = 0;
  if (!pf_incompressible_samples(t, t->grp, n, 8, 8192)) {
    k = ZSTD_compressCCtx(t->cctx, t->out + at, PF_OUT_CAP - at, t->grp, n, j->level);
    framed = !ZSTD_isError(k) && k + n / 64 < n;
  }
  if (!framed) {
    memcpy(t->out + at, t->grp, n);
    k = n;
  }
  t->used += k;
  for (size_t i = 0; i < t->nmembers; i++) {
    pf_member *m = &t->members[i];
    pf_chunk *c = pf_new_chunk(t);
    if (c == NULL) return ENOMEM;
    if (framed) {
      c->offset = at; /* made absolute by the flush */
      c->stored = k;
      c->raw = n;
      c->compressed = 1;
      c->shared = 1;
      c->start = m->start;
      c->len = m->len;
    } else {
      c->offset = at + m->start;
      c->stored = c->raw = m->len;
    }
    pf_file *f = &j->files[m->index];
    f->thread = t->id;
    f->first = (uint32_t)(t->nchunks - 1);
    f->count = 1;
  }
  t->nmembers = 0;
  t->gused = 0;
  return 0;
}

/*
 * Whether a whole chunk looks incompressible: three 16 KiB samples (start, middle, end) that zstd
 * cannot shrink by 3%. Such a chunk (already compressed or encrypted data) is stored raw without
 * compressing all of it first.
 */
static int pf_incompressible_samples(pf_thread *t, const unsigned char *src, size_t n, int samples, size_t S) {
  if (n < 16 * S) return 0;
  size_t in = 0, out = 0;
  unsigned char *scratch = t->out + t->used; /* room: the caller made it */
  for (int i = 0; i < samples; i++) {
    size_t at = i == samples - 1 ? n - S : ((n - S) / (size_t)(samples - 1) * (size_t)i) & ~(size_t)4095;
    size_t k = ZSTD_compressCCtx(t->cctx, scratch, ZSTD_compressBound(S), src + at, S, t->job->level);
    if (ZSTD_isError(k)) return 0;
    in += S;
    out += k;
  }
  return out * 100 >= in * 97;
}

static int pf_incompressible(pf_thread *t, const unsigned char *src, size_t n) { return pf_incompressible_samples(t, src, n, 3, 16384); }

/* Compresses (or copies) one piece into the out buffer as a chunk of the current file. */
static int pf_put(pf_thread *t, const unsigned char *src, size_t n) {
  pf_job *j = t->job;
  size_t bound = ZSTD_compressBound(n);
  if (t->used + bound > PF_OUT_CAP) {
    int e = pf_flush(t);
    if (e != 0) return e;
  }
  if (n % 4096 == 0 && ((uintptr_t)src & 4095) == 0 && pf_incompressible(t, src, n)) {
    /* raw, and aligned: written from where it is, without a copy into the out buffer */
    uint64_t base = __atomic_fetch_add(&j->end, n, __ATOMIC_RELAXED);
    int e = pf_write(j, src, n, base);
    if (e != 0) return e;
    pf_chunk *c = pf_new_chunk(t);
    if (c == NULL) return ENOMEM;
    c->offset = base;
    c->stored = c->raw = n;
    c->placed = 1;
    return 0;
  }
  size_t stored = n;
  uint8_t compressed = 0;
  if (n >= 64) {
    size_t k = ZSTD_compressCCtx(t->cctx, t->out + t->used, PF_OUT_CAP - t->used, src, n, j->level);
    if (!ZSTD_isError(k) && k <= n - n / 10) {
      stored = k;
      compressed = 1;
    }
  }
  if (!compressed) memcpy(t->out + t->used, src, n);
  pf_chunk *c = pf_new_chunk(t);
  if (c == NULL) return ENOMEM;
  c->offset = t->used; /* made absolute by the flush */
  c->stored = stored;
  c->raw = n;
  c->compressed = compressed;
  t->used += stored;
  return 0;
}

static void pf_progress(pf_job *j, uint64_t bytes) {
  if (j->progress == NULL) return;
  /* Read by the main thread for a progress bar only: a stale value is harmless. */
  pthread_mutex_lock(&j->lock);
  j->progress[0] += 1;
  j->progress[1] += (double)bytes;
  pthread_mutex_unlock(&j->lock);
}

/* A finished file's result record (see js_pack_files), published when the caller gave a buffer. */
static void pf_result(unsigned char *r, const pf_file *f) {
  memcpy(r, f->sha, 32);
  memcpy(r + 32, &f->size, 8);
  memcpy(r + 40, f->head, sizeof f->head);
  memcpy(r + 60, &f->count, 4);
  r[64] = f->fresh;
  r[65] = f->min_byte;
  r[66] = f->non_space;
}

static void pf_publish(pf_job *j, uint32_t index) {
  if (j->live == NULL) return;
  unsigned char *r = j->live + (size_t)index * PF_RESULT;
  pf_result(r, &j->files[index]);
  __atomic_store_n(r + PF_RESULT - 1, 1, __ATOMIC_RELEASE); /* the record is complete */
}

/*
 * Reads into buf until cap bytes, the end of the file, or a short read that ends exactly at the
 * size fstat gave (`done` bytes came before this buffer): 0, or an errno. *eof tells the end.
 */
static int pf_read(int fd, unsigned char *buf, size_t cap, uint64_t done, uint64_t size, size_t *got, int *eof) {
  size_t n = 0;
  *eof = 0;
  while (n < cap) {
    ssize_t k = read(fd, buf + n, cap - n);
    if (k < 0) {
      if (errno == EINTR) continue;
      *got = n;
      return errno;
    }
    if (k == 0) {
      *eof = 1;
      break;
    }
    n += (size_t)k;
    if (n < cap && done + n == size) {
      *eof = 1;
      break;
    }
  }
  *got = n;
  return 0;
}

static void pf_one(pf_thread *t, uint32_t index) {
  pf_job *j = t->job;
  pf_file *f = &j->files[index];
  const char *path = j->paths[index];
  int keep = j->keep[index] && j->pack_path != NULL;
  /* O_NONBLOCK: a path that became a FIFO since the walk must not block the open */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME | O_NOCTTY | O_NONBLOCK);
  if (fd < 0 && errno == EPERM) fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return pf_fail(j, index, errno, "open");
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return pf_fail(j, index, EINVAL, "open (no longer a regular file)");
  }
  EVP_MD_CTX *ctx = t->md;
  if (EVP_DigestInit_ex(ctx, pf_sha256(), NULL) != 1) {
    close(fd);
    return pf_fail(j, -2, ENOMEM, "EVP_DigestInit_ex");
  }
  uint64_t total = 0;
  size_t prefill = 0;
  int eof = 0, e;
  f->thread = t->id;
  if (keep && (uint64_t)st.st_size <= PF_SMALL) {
    /* A small file is read straight into the group (nothing is copied when it is new). */
    if (t->gused + PF_SMALL + 1 > PF_GROUP_CAP && (e = pf_group_flush(t)) != 0) {
      close(fd);
      return pf_fail(j, -2, e, "write");
    }
    unsigned char *buf = t->grp + t->gused;
    size_t n = 0;
    if ((e = pf_read(fd, buf, PF_SMALL + 1, 0, (uint64_t)st.st_size, &n, &eof)) != 0) {
      close(fd);
      return pf_fail(j, index, e, "read");
    }
    if (n <= PF_SMALL) {
      close(fd);
      pf_sample(f, buf, n);
      EVP_DigestUpdate(ctx, buf, n);
      EVP_DigestFinal_ex(ctx, f->sha, NULL);
      f->size = n;
      int fresh = !pf_in_store(j, f->sha) && pf_take(j, f->sha);
      f->fresh = (uint8_t)fresh;
      pf_publish(j, index);
      if (fresh && n > 0) {
        if (t->nmembers == t->capmembers) {
          size_t cap = t->capmembers ? t->capmembers * 2 : 256;
          pf_member *m = realloc(t->members, cap * sizeof *m);
          if (m == NULL) return pf_fail(j, -2, ENOMEM, "malloc");
          t->members = m;
          t->capmembers = cap;
        }
        t->members[t->nmembers++] = (pf_member){index, (uint32_t)t->gused, (uint32_t)n};
        t->gused += n;
        if (t->gused >= PF_GROUP && (e = pf_group_flush(t)) != 0) return pf_fail(j, -2, e, "write");
      }
      pf_progress(j, n);
      return;
    }
    /* it grew past a small file since: on as a large one, from what was read */
    memcpy(t->in, buf, n);
    prefill = n;
  }
  size_t first_chunk = t->nchunks;
  int large = 0;
  for (;;) {
    size_t n = prefill;
    prefill = 0;
    if (!eof && n < PF_CHUNK) {
      size_t more = 0;
      if ((e = pf_read(fd, t->in + n, PF_CHUNK - n, total + n, (uint64_t)st.st_size, &more, &eof)) != 0) {
        close(fd);
        return pf_fail(j, index, e, "read");
      }
      n += more;
    }
    if (total == 0) pf_sample(f, t->in, n);
    if (n == PF_CHUNK) large = 1;
    if (n > 0) EVP_DigestUpdate(ctx, t->in, n);
    total += n;
    if (large && keep && n > 0) {
      /* a large file: its chunks go out before its hash is known */
      if ((e = pf_put(t, t->in, n)) != 0) {
        close(fd);
        return pf_fail(j, -2, e, "write");
      }
    }
    if (eof || n < PF_CHUNK || __atomic_load_n(&j->stop, __ATOMIC_RELAXED)) break;
  }
  close(fd);
  EVP_DigestFinal_ex(ctx, f->sha, NULL);
  f->size = total;
  int fresh = keep && !pf_in_store(j, f->sha) && pf_take(j, f->sha);
  if (large) {
    if (fresh) {
      f->first = (uint32_t)first_chunk;
      f->count = (uint32_t)(t->nchunks - first_chunk);
    }
    /* else: chunks written for nothing; they stay unreferenced in t->chunks */
  } else if (fresh) {
    f->first = (uint32_t)t->nchunks;
    if (total > 0 && (e = pf_put(t, t->in, (size_t)total)) != 0) return pf_fail(j, -2, e, "write");
    f->count = (uint32_t)(t->nchunks - f->first);
  }
  f->fresh = (uint8_t)fresh;
  pf_publish(j, index);
  pf_progress(j, total);
}

static void *pf_run(void *arg) {
  pf_thread *t = arg;
  pf_job *j = t->job;
  for (;;) {
    if (__atomic_load_n(&j->stop, __ATOMIC_RELAXED)) break;
    uint32_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
    if (i >= j->count) break;
    pf_one(t, i);
  }
  if (!__atomic_load_n(&j->stop, __ATOMIC_RELAXED)) {
    int e = pf_group_flush(t);
    if (e == 0) e = pf_flush(t);
    if (e != 0) pf_fail(j, -2, e, "write");
  }
  return NULL;
}

/*
 * A thread's buffer: 2 MiB aligned and, where the kernel does it on request, backed by huge pages
 * (a few faults instead of a thousand, and fewer TLB misses as sha256 and zstd run over it).
 */
static unsigned char *pf_buffer(size_t size) {
  void *p = NULL;
  size_t huge = 2u << 20;
  size = (size + huge - 1) & ~(huge - 1);
  if (posix_memalign(&p, huge, size) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}

/*
 * The pack's data synced as it is written, on a thread of its own that only waits on the disk:
 * the caller's fsync after the run then has little left to do, where it would otherwise wait
 * for the whole pack at once while the processor sat idle (half a second a GiB on a virtual disk).
 */
#define PF_FLUSH_EVERY (32u << 20)
static void *pf_flusher(void *arg) {
  pf_job *j = arg;
  int fd = j->fd >= 0 ? j->fd : j->buffered_fd;
  uint64_t synced = __atomic_load_n(&j->end, __ATOMIC_RELAXED);
  pthread_mutex_lock(&j->flush_lock);
  while (!j->flush_stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += 50 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->flush_cond, &j->flush_lock, &until);
    if (j->flush_stop) break;
    uint64_t end = __atomic_load_n(&j->end, __ATOMIC_RELAXED);
    if (end - synced < PF_FLUSH_EVERY) continue;
    pthread_mutex_unlock(&j->flush_lock);
    /* a failure here is the caller's fsync's to report: it syncs the whole pack again, through a
     * descriptor opened before the run, which Linux (4.13 and later) tells of a write-back error
     * even when this call saw it first */
    fdatasync(fd);
    synced = end;
    pthread_mutex_lock(&j->flush_lock);
  }
  pthread_mutex_unlock(&j->flush_lock);
  return NULL;
}

static void pf_execute(napi_env env, void *data) {
  (void)env;
  pf_job *j = data;
  if (j->pack_path != NULL) {
    /* DATAROOT_NO_DIRECT_IO: buffered writes (for a file system that misbehaves with O_DIRECT) */
    const char *no_direct = getenv("DATAROOT_NO_DIRECT_IO");
    j->fd = no_direct != NULL && no_direct[0] != 0 ? -1 : open(j->pack_path, O_WRONLY | O_CLOEXEC | O_DIRECT);
    j->direct = j->fd >= 0;
    if (j->fd < 0 && (j->buffered_fd = open(j->pack_path, O_WRONLY | O_CLOEXEC)) < 0) return pf_fail(j, -2, errno, "open");
  }
  int ready = 1;
  for (int i = 0; i < j->nthreads && ready; i++) {
    pf_thread *t = &j->threads[i];
    t->job = j;
    t->id = i;
    if ((t->in = pf_buffer(PF_CHUNK)) == NULL || (t->out = pf_buffer(PF_OUT_CAP + 4096)) == NULL || (t->grp = pf_buffer(PF_GROUP_CAP)) == NULL ||
        (t->cctx = ZSTD_createCCtx()) == NULL || (t->md = EVP_MD_CTX_new()) == NULL) {
      pf_fail(j, -2, ENOMEM, "malloc");
      ready = 0;
    }
  }
  if (ready) {
    pthread_t flusher;
    int flushing = j->pack_path != NULL && pthread_create(&flusher, NULL, pf_flusher, j) == 0;
    int started = 0;
    for (int i = 1; i < j->nthreads; i++, started++)
      if (pthread_create(&j->threads[i].tid, NULL, pf_run, &j->threads[i]) != 0) break;
    pf_run(&j->threads[0]);
    for (int i = 1; i <= started; i++) pthread_join(j->threads[i].tid, NULL);
    if (flushing) {
      pthread_mutex_lock(&j->flush_lock);
      j->flush_stop = 1;
      pthread_cond_signal(&j->flush_cond);
      pthread_mutex_unlock(&j->flush_lock);
      pthread_join(flusher, NULL);
    }
  }
  if (j->fd >= 0) close(j->fd);
  if (j->buffered_fd >= 0) close(j->buffered_fd);
  j->fd = j->buffered_fd = -1;
}

static void pf_free(napi_env env, pf_job *j) {
  for (int i = 0; i < j->nrefs; i++) napi_delete_reference(env, j->refs[i]);
  if (j->threads != NULL)
    for (int i = 0; i < j->nthreads; i++) {
      free(j->threads[i].in);
      free(j->threads[i].out);
      free(j->threads[i].chunks);
      free(j->threads[i].grp);
      free(j->threads[i].members);
      if (j->threads[i].cctx != NULL) ZSTD_freeCCtx(j->threads[i].cctx);
      if (j->threads[i].md != NULL) EVP_MD_CTX_free(j->threads[i].md);
    }
  free(j->threads);
  free(j->paths);
  free(j->files);
  free(j->seen);
  free(j->seen_used);
  free(j->tables);
  free(j->table_counts);
  free(j->pack_path);
  pthread_mutex_destroy(&j->lock);
  pthread_mutex_destroy(&j->flush_lock);
  pthread_cond_destroy(&j->flush_cond);
  free(j);
}

/* The chunk descriptors of the fresh files, in file order (see above); the byte count in *len. */
static unsigned char *pf_chunk_list(pf_job *j, size_t *len) {
  size_t n = 0;
  for (uint32_t i = 0; i < j->count; i++)
    if (j->files[i].fresh) n += j->files[i].count;
  unsigned char *out = calloc(n * PF_CHUNK_DESC + 1, 1);
  if (out == NULL) return NULL;
  size_t at = 0;
  for (uint32_t i = 0; i < j->count; i++) {
    pf_file *f = &j->files[i];
    if (!f->fresh) continue;
    for (uint32_t c = 0; c < f->count; c++, at += PF_CHUNK_DESC) {
      pf_chunk *ch = &j->threads[f->thread].chunks[f->first + c];
      memcpy(out + at, &ch->offset, 8);
      memcpy(out + at + 8, &ch->stored, 8);
      memcpy(out + at + 16, &ch->raw, 8);
      memcpy(out + at + 24, &ch->start, 4);
      memcpy(out + at + 28, &ch->len, 4);
      out[at + 32] = ch->compressed;
      out[at + 33] = ch->shared;
    }
  }
  *len = at;
  return out;
}

static void pf_complete(napi_env env, napi_status status, void *data) {
  pf_job *j = data;
  napi_value out[6], arr;
  void *rp = NULL;
  if (status != napi_ok && j->failed == -1) {
    j->failed = -2;
    j->err = EIO;
    j->syscall = "cancelled";
  }
  size_t clen = 0;
  unsigned char *chunks = j->failed == -1 ? pf_chunk_list(j, &clen) : calloc(1, 1);
  napi_status rs = napi_ok;
  if (j->live != NULL) {
    rp = j->live;
    rs = napi_get_reference_value(env, j->refs[4], &out[0]);
  } else rs = napi_create_buffer(env, (size_t)j->count * PF_RESULT + 1, &rp, &out[0]);
  if (rs != napi_ok || chunks == NULL || napi_create_external_buffer(env, clen + 1, chunks, free_malloced, NULL, &out[1]) != napi_ok) {
    free(chunks);
    rp = NULL;
    napi_get_undefined(env, &out[0]);
    napi_get_undefined(env, &out[1]);
    if (j->failed == -1) {
      j->failed = -2;
      j->err = ENOMEM;
      j->syscall = "result buffers";
    }
  }
  if (rp != NULL)
    for (uint32_t i = 0; i < j->count; i++) {
      unsigned char *r = (unsigned char *)rp + (size_t)i * PF_RESULT;
      memset(r, 0, PF_RESULT);
      pf_result(r, &j->files[i]);
      r[PF_RESULT - 1] = 1;
    }
  napi_create_double(env, (double)j->end, &out[2]);
  napi_create_double(env, (double)j->failed, &out[3]);
  napi_create_string_utf8(env, j->failed == -1 ? "" : errno_name(j->err), NAPI_AUTO_LENGTH, &out[4]);
  napi_create_string_utf8(env, j->syscall != NULL ? j->syscall : "", NAPI_AUTO_LENGTH, &out[5]);
  napi_create_array_with_length(env, 6, &arr);
  for (uint32_t i = 0; i < 6; i++) napi_set_element(env, arr, i, out[i]);
  napi_resolve_deferred(env, j->deferred, arr);
  napi_delete_async_work(env, j->work);
  pf_free(env, j);
}

napi_value js_pack_files(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  size_t argc = 11;
  const char *usage = "packFiles(paths, count, keep, packPath, start, known, knownStride, progress, level, threads[, results])";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 10) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  pf_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, "packFiles", "", ENOMEM);
  pthread_mutex_init(&j->lock, NULL);
  pthread_mutex_init(&j->flush_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the flusher's waits: not moved by clock steps */
  pthread_cond_init(&j->flush_cond, &ca);
  pthread_condattr_destroy(&ca);
  j->fd = -1;
  j->buffered_fd = -1;
  j->failed = -1;
  char *pathbuf = NULL;
  size_t pathlen = 0, keeplen = 0;
  uint32_t count = 0, ntables = 0, stride = 0;
  double start = 0;
  int32_t level = 0, threads = 0;
  napi_valuetype ptype;
  bool is_array = false;
  void *keep = NULL;
  if (napi_get_buffer_info(env, argv[0], (void **)&pathbuf, &pathlen) != napi_ok || napi_get_value_uint32(env, argv[1], &count) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &keep, &keeplen) != napi_ok || keeplen < count || napi_typeof(env, argv[3], &ptype) != napi_ok ||
      napi_get_value_double(env, argv[4], &start) != napi_ok || start < 0 || napi_is_array(env, argv[5], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[5], &ntables) != napi_ok || napi_get_value_uint32(env, argv[6], &stride) != napi_ok || stride < 32 ||
      napi_get_value_int32(env, argv[8], &level) != napi_ok || napi_get_value_int32(env, argv[9], &threads) != napi_ok || threads < 1 || threads > 64) {
    pf_free(env, j);
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  j->count = count;
  j->keep = keep;
  j->end = (uint64_t)start;
  j->level = level;
  j->nthreads = threads;
  j->paths = calloc(count ? count : 1, sizeof *j->paths);
  j->files = calloc(count ? count : 1, sizeof *j->files);
  j->threads = calloc((size_t)threads, sizeof *j->threads);
  j->seen_cap = 1024;
  while (j->seen_cap < (size_t)count * 2) j->seen_cap <<= 1;
  j->seen = malloc(j->seen_cap * 32);
  j->seen_used = calloc(j->seen_cap, 1);
  j->tables = calloc(ntables ? ntables : 1, sizeof *j->tables);
  j->table_counts = calloc(ntables ? ntables : 1, sizeof *j->table_counts);
  if (j->paths == NULL || j->files == NULL || j->threads == NULL || j->seen == NULL || j->seen_used == NULL || j->tables == NULL || j->table_counts == NULL) {
    pf_free(env, j);
    return throw_errno(env, "packFiles", "", ENOMEM);
  }
  /* the paths: count NUL-terminated strings, back to back */
  size_t at = 0;
  for (uint32_t i = 0; i < count; i++) {
    const char *nul = at < pathlen ? memchr(pathbuf + at, 0, pathlen - at) : NULL;
    if (nul == NULL) {
      pf_free(env, j);
      napi_throw_type_error(env, "EINVAL", "packFiles: paths must hold count NUL-terminated paths");
      return NULL;
    }
    j->paths[i] = pathbuf + at;
    at = (size_t)(nul - pathbuf) + 1;
  }
  if (ptype == napi_string) {
    size_t n = 0;
    napi_get_value_string_utf8(env, argv[3], NULL, 0, &n);
    j->pack_path = malloc(n + 1);
    if (j->pack_path == NULL || n >= MAX_PATH) {
      pf_free(env, j);
      napi_throw_type_error(env, "EINVAL", usage);
      return NULL;
    }
    napi_get_value_string_utf8(env, argv[3], j->pack_path, n + 1, &n);
  }
  j->ntables = ntables;
  j->stride = stride;
  for (uint32_t i = 0; i < ntables; i++) {
    napi_value el;
    void *data = NULL;
    size_t len = 0;
    if (napi_get_element(env, argv[5], i, &el) != napi_ok || napi_get_buffer_info(env, el, &data, &len) != napi_ok || len % stride != 0) {
      pf_free(env, j);
      napi_throw_type_error(env, "EINVAL", "packFiles: known must be Buffers of knownStride-byte entries");
      return NULL;
    }
    j->tables[i] = data;
    j->table_counts[i] = len / stride;
  }
  napi_typedarray_type ttype;
  size_t tlen = 0;
  void *tdata = NULL;
  if (napi_get_typedarray_info(env, argv[7], &ttype, &tlen, &tdata, NULL, NULL) == napi_ok && ttype == napi_float64_array && tlen >= 2) j->progress = tdata;
  /* what the threads read stays alive until they are done */
  napi_value keepalive[4] = {argv[0], argv[2], argv[5], argv[7]};
  for (int i = 0; i < 4; i++)
    if (napi_create_reference(env, keepalive[i], 1, &j->refs[j->nrefs]) == napi_ok) j->nrefs++;
  /* results published as files finish: a zeroed Buffer of count * PF_RESULT bytes from the caller */
  if (argc > 10) {
    void *live = NULL;
    size_t llen = 0;
    napi_valuetype lt;
    if (napi_typeof(env, argv[10], &lt) == napi_ok && lt != napi_undefined && lt != napi_null) {
      if (napi_get_buffer_info(env, argv[10], &live, &llen) != napi_ok || llen < (size_t)count * PF_RESULT || j->nrefs != 4 ||
          napi_create_reference(env, argv[10], 1, &j->refs[4]) != napi_ok) {
        pf_free(env, j);
        napi_throw_type_error(env, "EINVAL", "packFiles: results must be a zeroed Buffer of count * 80 bytes");
        return NULL;
      }
      j->nrefs = 5;
      j->live = live;
    }
  }
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "packFiles", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, pf_execute, pf_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}
