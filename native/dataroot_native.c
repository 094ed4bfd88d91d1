/*
 * dataroot's one native addon: the few system calls Node lacks and a data-root needs.
 *   lgetxattr(path, name) -> Buffer | null        (ENODATA / ENOTSUP -> null)
 *   llistxattr(path) -> string[]
 *   lsetxattr(path, name, Buffer)
 *   mknod(path, mode, major, minor)                (mode includes S_IFCHR / S_IFBLK / S_IFIFO)
 *   lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)   (utimensat, AT_SYMLINK_NOFOLLOW)
 *   flockProbe(path) -> boolean (true: another open file description holds a flock on it)
 *   startWriteback(fd, offset, length)   (sync_file_range WRITE: the disk starts on it now, fsync later waits less)
 *   alignedBuffer(size) -> Buffer   (page-aligned memory, for O_DIRECT writes)
 *   scandir(path) -> Buffer   (a directory's entries with their lstat, packed: see js_scandir)
 *   scanTree(root, prevIdentity, prevVolatile, carry, xattrs[, threads])   (a whole tree, matched against the
 *     previous snapshot's manifest: see js_scan_tree)
 *   zstdCompress(buffer, level) -> Buffer, zstdDecompress(buffer, size) -> Buffer, zstdCompressAsync,
 *     zstdDecompressAsync (the same on the thread pool), zstdCompressInto(src, dst, level)   (with libzstd only:
 *     the snapshot store's objects; Node's zlib has no zstd and its brotli/deflate are 5-20x slower)
 * Errors are thrown as Error objects with `code` set to the errno name (ENOENT, EPERM, ...).
 * Built by scripts/build-native.mjs with the C compiler and Node's own headers (no node-gyp).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdint.h>
#include <unistd.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <pthread.h>
#include <node_api.h>
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

#define MAX_PATH 4096
#define MAX_NAME 256

static const char *errno_name(int e) {
  switch (e) {
  case ENOENT: return "ENOENT";
  case EPERM: return "EPERM";
  case EACCES: return "EACCES";
  case EEXIST: return "EEXIST";
  case ENOTDIR: return "ENOTDIR";
  case EISDIR: return "EISDIR";
  case EINVAL: return "EINVAL";
  case ENOSPC: return "ENOSPC";
  case EROFS: return "EROFS";
  case ENODATA: return "ENODATA";
  case ENOTSUP: return "ENOTSUP";
  case ERANGE: return "ERANGE";
  case E2BIG: return "E2BIG";
  case ENAMETOOLONG: return "ENAMETOOLONG";
  case ELOOP: return "ELOOP";
  case EIO: return "EIO";
  case ENOMEM: return "ENOMEM";
  case EMFILE: return "EMFILE";
  case ENFILE: return "ENFILE";
  case EFBIG: return "EFBIG";
  case EDQUOT: return "EDQUOT";
  case EBADF: return "EBADF";
  case ENXIO: return "ENXIO";
  default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, const char *syscall, const char *path, int e) {
  char msg[MAX_PATH + 128];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", errno_name(e), strerror(e), syscall, path);
  napi_value code, message, err;
  napi_create_string_utf8(env, errno_name(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &err);
  napi_value where;
  if (napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &where) == napi_ok) napi_set_named_property(env, err, "path", where);
  napi_throw(env, err);
  return NULL;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) return -1;
  if (len >= cap - 1) return -1;
  return 0;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "EINVAL", "missing arguments");
    return -1;
  }
  return 0;
}

/* The one argument of a function that takes a path; on failure a TypeError naming the call. */
static int path_arg(napi_env env, napi_callback_info info, char *path, const char *usage) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv) || get_string(env, argv[0], path, MAX_PATH)) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  return 0;
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[MAX_PATH], name[MAX_NAME];
  if (get_args(env, info, 2, argv) || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name)) {
    napi_throw_type_error(env, "EINVAL", "lgetxattr(path, name)");
    return NULL;
  }
  ssize_t n = lgetxattr(path, name, NULL, 0);
  if (n < 0) {
    if (errno == ENODATA || errno == ENOTSUP) {
      napi_value nul;
      napi_get_null(env, &nul);
      return nul;
    }
    return throw_errno(env, "lgetxattr", path, errno);
  }
  void *data = NULL;
  napi_value buf;
  if (napi_create_buffer(env, (size_t)n, &data, &buf) != napi_ok) return NULL;
  if (n > 0) {
    ssize_t m = lgetxattr(path, name, data, (size_t)n);
    if (m < 0) return throw_errno(env, "lgetxattr", path, errno);
    if (m != n) return throw_errno(env, "lgetxattr", path, ERANGE);
  }
  return buf;
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  char path[MAX_PATH];
  if (path_arg(env, info, path, "llistxattr(path)")) return NULL;
  napi_value arr;
  napi_create_array(env, &arr);
  ssize_t n = llistxattr(path, NULL, 0);
  if (n < 0) {
    if (errno == ENOTSUP) return arr;
    return throw_errno(env, "llistxattr", path, errno);
  }
  if (n == 0) return arr;
  char *names = malloc((size_t)n);
  if (names == NULL) return throw_errno(env, "llistxattr", path, ENOMEM);
  ssize_t m = llistxattr(path, names, (size_t)n);
  if (m < 0) {
    int e = errno;
    free(names);
    return throw_errno(env, "llistxattr", path, e);
  }
  uint32_t i = 0;
  for (ssize_t off = 0; off < m;) {
    size_t len = strnlen(names + off, (size_t)(m - off));
    napi_value s;
    napi_create_string_utf8(env, names + off, len, &s);
    napi_set_element(env, arr, i++, s);
    off += (ssize_t)len + 1;
  }
  free(names);
  return arr;
}

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[MAX_PATH], name[MAX_NAME];
  void *data = NULL;
  size_t len = 0;
  if (get_args(env, info, 3, argv) || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name) ||
      napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "lsetxattr(path, name, buffer)");
    return NULL;
  }
  if (lsetxattr(path, name, data, len, 0) != 0) return throw_errno(env, "lsetxattr", path, errno);
  return NULL;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[MAX_PATH];
  uint32_t mode, major_, minor_;
  if (get_args(env, info, 4, argv) || get_string(env, argv[0], path, sizeof path) || get_u32(env, argv[1], &mode) || get_u32(env, argv[2], &major_) ||
      get_u32(env, argv[3], &minor_)) {
    napi_throw_type_error(env, "EINVAL", "mknod(path, mode, major, minor)");
    return NULL;
  }
  if (mknod(path, (mode_t)mode, makedev(major_, minor_)) != 0) return throw_errno(env, "mknod", path, errno);
  return NULL;
}

static napi_value js_lutimens(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char path[MAX_PATH];
  int64_t as, an, ms, mn;
  if (get_args(env, info, 5, argv) || get_string(env, argv[0], path, sizeof path) || get_i64(env, argv[1], &as) || get_i64(env, argv[2], &an) ||
      get_i64(env, argv[3], &ms) || get_i64(env, argv[4], &mn)) {
    napi_throw_type_error(env, "EINVAL", "lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)");
    return NULL;
  }
  struct timespec ts[2] = {{.tv_sec = as, .tv_nsec = an}, {.tv_sec = ms, .tv_nsec = mn}};
  if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, "utimensat", path, errno);
  return NULL;
}

#ifdef HAVE_ZSTD
static napi_value js_zstd_compress(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *src = NULL;
  size_t len = 0;
  int32_t level = 1;
  if (get_args(env, info, 2, argv) || napi_get_buffer_info(env, argv[0], &src, &len) != napi_ok || napi_get_value_int32(env, argv[1], &level) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "zstdCompress(buffer, level)");
    return NULL;
  }
  size_t cap = ZSTD_compressBound(len);
  void *dst = malloc(cap > 0 ? cap : 1);
  if (dst == NULL) return throw_errno(env, "zstdCompress", "", ENOMEM);
  size_t n = ZSTD_compress(dst, cap, src, len, level);
  if (ZSTD_isError(n)) {
    free(dst);
    napi_throw_error(env, "EIO", ZSTD_getErrorName(n));
    return NULL;
  }
  napi_value out;
  void *data = NULL;
  if (napi_create_buffer_copy(env, n, dst, &data, &out) != napi_ok) out = NULL;
  free(dst);
  return out;
}

/* zstdCompressInto(src, dst, level) -> bytes written into dst (dst sized by the caller; 0 when it does not fit). */
static napi_value js_zstd_compress_into(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *src = NULL, *dst = NULL;
  size_t len = 0, cap = 0;
  int32_t level = 1;
  if (get_args(env, info, 3, argv) || napi_get_buffer_info(env, argv[0], &src, &len) != napi_ok || napi_get_buffer_info(env, argv[1], &dst, &cap) != napi_ok ||
      napi_get_value_int32(env, argv[2], &level) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "zstdCompressInto(src, dst, level)");
    return NULL;
  }
  /* One context per thread, reused: a new one per call cost about 10 µs, a fifth of the time
   * to compress a 25 KB file. (Each worker thread loads this addon and calls it in turn.) */
  static __thread ZSTD_CCtx *cctx = NULL;
  if (cctx == NULL) cctx = ZSTD_createCCtx();
  size_t n = cctx != NULL ? ZSTD_compressCCtx(cctx, dst, cap, src, len, level) : ZSTD_compress(dst, cap, src, len, level);
  napi_value out;
  napi_create_double(env, ZSTD_isError(n) ? 0 : (double)n, &out);
  return out;
}

static napi_value js_zstd_decompress(napi_env env, napi_callback_info info) {
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

static void free_buffer(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
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
  } else if (napi_create_external_buffer(env, j->size, j->dst, free_buffer, NULL, &result) == napi_ok) {
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

static napi_value js_zstd_decompress_async(napi_env env, napi_callback_info info) { return zjob_start(env, info, 0); }

static napi_value js_zstd_compress_async(napi_env env, napi_callback_info info) { return zjob_start(env, info, 1); }

/*
 * packFiles(paths, count, keep, packPath, start, indexes, progress, level, threads[, results]) -> Promise of
 *   [results, index, end, failedIndex, errnoName, syscall, objects, newBytes, storedBytes]
 * The content half of a snapshot, on native threads: every file of a list is read, hashed
 * (sha256, by the OpenSSL that Node carries), classified, and, when it is to be kept and is
 * neither in the store (`indexes`: the sorted tables of the store's pack indexes, 48-byte
 * entries) nor already taken by this run, compressed (zstd at `level`; kept raw when that saves
 * less than a tenth) and appended to the pack. `paths` holds `count` NUL-terminated paths; `keep`
 * one byte a file (1: store the content, 0: hash only). Pack writes use O_DIRECT where the file
 * system takes it (buffered otherwise): each starts on a 4096-byte boundary at an offset taken
 * from a counter that starts at `start`, and is padded to a multiple of 4096. `progress` (two
 * doubles: files, bytes) is updated as files finish.
 * results: 64 bytes a file: sha256 (32), size read u64 (32), kind u8 (40: 0 empty, 1 bolt, 2 gzip,
 *   3 binary, 4 json, 5 text), new u8 (41: 1 when this file's content became a new object), chunk
 *   count u32 (44), done u8 (63: 1). Given `results` (a zeroed Buffer of count * 64 bytes), each
 *   file's record is written there as soon as the file is done, its done byte last, so that the
 *   caller can use the results while the run goes on; the promise then resolves with that Buffer.
 * After the last chunk, the record of every new object (sha256, size u64, chunk count u32,
 * reserved u32, then its chunk table: pack offset u64, stored size u64, raw size u64, method u8
 * (0 raw, 1 zstd), 7 reserved) is written and the pack is synced.
 * index: the new objects' .idx entries, sorted by sha256: sha256, record offset u64, size u64.
 * end: the pack offset after the last write. failedIndex: -1, or the file that could not be read
 * (-2: the pack could not be written), with the errno name and the failing call. objects,
 * newBytes, storedBytes: the new objects' count, content bytes, and bytes in the pack.
 * Large files (4 MiB or more) are compressed chunk by chunk as they are read, before their hash
 * is known; when the content turns out to be in the store already, those chunks stay in the pack
 * unreferenced (rare: an unchanged file is not read at all).
 */
#include <dlfcn.h>

#define PF_CHUNK (4u << 20)
/* Files up to PF_SMALL bytes are gathered into groups of about PF_GROUP bytes, each compressed as
 * one zstd frame: small files alone compress worse and slower (no history, a table a file). */
#define PF_SMALL (128u << 10)
#define PF_GROUP (1u << 20)
#define PF_GROUP_CAP (PF_GROUP + PF_SMALL + 1)
#define PF_OUT_CAP (PF_CHUNK + (PF_CHUNK >> 7) + 65536)
#define PF_RESULT 64
#define PF_ENTRY 32
#define PF_IDX_ENTRY 48

typedef int (*sha_init_fn)(void *);
typedef int (*sha_update_fn)(void *, const void *, size_t);
typedef int (*sha_final_fn)(unsigned char *, void *);
static sha_init_fn pf_sha_init;
static sha_update_fn pf_sha_update;
static sha_final_fn pf_sha_final;

/* OpenSSL's SHA256 functions, from the running Node (which exports them to addons). */
static int pf_sha_available(void) {
  if (pf_sha_init == NULL) {
    pf_sha_init = (sha_init_fn)dlsym(RTLD_DEFAULT, "SHA256_Init");
    pf_sha_update = (sha_update_fn)dlsym(RTLD_DEFAULT, "SHA256_Update");
    pf_sha_final = (sha_final_fn)dlsym(RTLD_DEFAULT, "SHA256_Final");
  }
  return pf_sha_init != NULL && pf_sha_update != NULL && pf_sha_final != NULL;
}

typedef struct {
  uint64_t offset, stored, raw;
  uint8_t method;
  uint8_t placed;      /* written on its own: offset is already the pack offset */
  uint32_t start, len; /* method 3: this object's slice of the shared frame */
} pf_chunk;

/* A small file waiting in a group: its content is grp[start, start + len). */
typedef struct {
  uint32_t index, start, len;
} pf_member;

typedef struct {
  unsigned char sha[32];
  uint64_t size;
  uint8_t kind, fresh;
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
  /* after the run: the index entries of the new objects (sorted by sha256), and their totals */
  unsigned char *idx;
  uint64_t objects, new_bytes, stored_bytes;
};

static int pf_in_store(pf_job *j, const unsigned char *sha) {
  for (uint32_t t = 0; t < j->ntables; t++) {
    uint64_t lo = 0, hi = j->table_counts[t];
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      int c = memcmp(j->tables[t] + mid * PF_IDX_ENTRY, sha, 32);
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

static uint8_t pf_kind(const unsigned char *h, size_t n) {
  if (n == 0) return 0;
  if (n >= 20) {
    uint32_t m;
    memcpy(&m, h + 16, 4);
    if (m == 0xed0cdaedu || m == 0xedda0cedu) return 1;
  }
  if (h[0] == 0x1f && n > 1 && h[1] == 0x8b) return 2;
  if (n > 8192) n = 8192;
  for (size_t i = 0; i < n; i++)
    if (h[i] < 0x09) return 3;
  for (size_t i = 0; i < n; i++) {
    unsigned c = h[i];
    if (c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09) continue;
    return c == 0x7b || c == 0x5b ? 4 : 5;
  }
  return 5;
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
  size_t k = ZSTD_compressCCtx(t->cctx, t->out + at, PF_OUT_CAP - at, t->grp, n, j->level);
  int framed = !ZSTD_isError(k) && k + n / 64 < n;
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
      c->method = 3;
      c->start = m->start;
      c->len = m->len;
    } else {
      c->offset = at + m->start;
      c->stored = c->raw = m->len;
      c->method = 0;
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
static int pf_incompressible(pf_thread *t, const unsigned char *src, size_t n) {
  const size_t S = 16384;
  if (n < 16 * S) return 0;
  size_t at[3] = {0, (n / 2) & ~(size_t)4095, n - S}, in = 0, out = 0;
  unsigned char *scratch = t->out + t->used; /* room: the caller made it */
  for (int i = 0; i < 3; i++) {
    size_t k = ZSTD_compressCCtx(t->cctx, scratch, ZSTD_compressBound(S), src + at[i], S, t->job->level);
    if (ZSTD_isError(k)) return 0;
    in += S;
    out += k;
  }
  return out * 100 >= in * 97;
}

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
    c->method = 0;
    c->placed = 1;
    return 0;
  }
  size_t stored = n;
  uint8_t method = 0;
  if (n >= 64) {
    size_t k = ZSTD_compressCCtx(t->cctx, t->out + t->used, PF_OUT_CAP - t->used, src, n, j->level);
    if (!ZSTD_isError(k) && k <= n - n / 10) {
      stored = k;
      method = 1;
    }
  }
  if (method == 0) memcpy(t->out + t->used, src, n);
  pf_chunk *c = pf_new_chunk(t);
  if (c == NULL) return ENOMEM;
  c->offset = t->used; /* made absolute by the flush */
  c->stored = stored;
  c->raw = n;
  c->method = method;
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
  r[40] = f->kind;
  r[41] = f->fresh;
}

static void pf_publish(pf_job *j, uint32_t index) {
  if (j->live == NULL) return;
  unsigned char *r = j->live + (size_t)index * PF_RESULT;
  pf_result(r, &j->files[index]);
  __atomic_store_n(r + 63, 1, __ATOMIC_RELEASE); /* the record is complete */
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
  unsigned char ctx[512] __attribute__((aligned(64)));
  pf_sha_init(ctx);
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
      f->kind = pf_kind(buf, n);
      pf_sha_update(ctx, buf, n);
      pf_sha_final(f->sha, ctx);
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
    if (total == 0) f->kind = pf_kind(t->in, n);
    if (n == PF_CHUNK) large = 1;
    if (n > 0) pf_sha_update(ctx, t->in, n);
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
  pf_sha_final(f->sha, ctx);
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

static int pf_cmp_digest(const void *a, const void *b) { return memcmp(a, b, 32); }

/*
 * After the contents: every new object's record (sha256, size u64, chunk count u32, reserved u32,
 * then its chunk table) written after the last chunk, the pack synced, and the index entries
 * (sha256, record offset u64, size u64) sorted for the .idx file.
 */
static void pf_seal(pf_job *j) {
  size_t bytes = 0;
  for (uint32_t i = 0; i < j->count; i++)
    if (j->files[i].fresh) {
      j->objects++;
      bytes += 48 + (size_t)j->files[i].count * PF_ENTRY;
    }
  if (j->objects == 0) return;
  size_t len = (bytes + 4095) & ~(size_t)4095;
  unsigned char *h = NULL;
  j->idx = malloc(j->objects * PF_IDX_ENTRY);
  if (j->idx == NULL || posix_memalign((void **)&h, 4096, len) != 0) return pf_fail(j, -2, ENOMEM, "malloc");
  memset(h, 0, len);
  uint64_t base = j->end, at = 0, k = 0;
  for (uint32_t i = 0; i < j->count; i++) {
    pf_file *f = &j->files[i];
    if (!f->fresh) continue;
    unsigned char *r = h + at, *x = j->idx + k++ * PF_IDX_ENTRY;
    uint64_t off = base + at;
    memcpy(r, f->sha, 32);
    memcpy(r + 32, &f->size, 8);
    memcpy(r + 40, &f->count, 4);
    memcpy(x, f->sha, 32);
    memcpy(x + 32, &off, 8);
    memcpy(x + 40, &f->size, 8);
    at += 48;
    j->stored_bytes += 48 + (uint64_t)f->count * PF_ENTRY;
    j->new_bytes += f->size;
    for (uint32_t c = 0; c < f->count; c++, at += PF_ENTRY) {
      pf_chunk *ch = &j->threads[f->thread].chunks[f->first + c];
      memcpy(h + at, &ch->offset, 8);
      memcpy(h + at + 8, &ch->stored, 8);
      memcpy(h + at + 16, &ch->raw, 8);
      h[at + 24] = ch->method;
      if (ch->method == 3) {
        /* a slice of a shared frame: start u24, length u32; the frame counts once */
        h[at + 25] = (unsigned char)(ch->start & 0xff);
        h[at + 26] = (unsigned char)((ch->start >> 8) & 0xff);
        h[at + 27] = (unsigned char)((ch->start >> 16) & 0xff);
        memcpy(h + at + 28, &ch->len, 4);
        if (ch->start == 0) j->stored_bytes += ch->stored;
      } else j->stored_bytes += ch->stored;
    }
  }
  qsort(j->idx, j->objects, PF_IDX_ENTRY, pf_cmp_digest);
  int e = pf_write(j, h, len, base);
  free(h);
  if (e != 0) return pf_fail(j, -2, e, "write");
  j->end = base + len;
  int fd = __atomic_load_n(&j->direct, __ATOMIC_ACQUIRE) ? j->fd : j->buffered_fd;
  if (fsync(fd) != 0) return pf_fail(j, -2, errno, "fsync");
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
        (t->cctx = ZSTD_createCCtx()) == NULL) {
      pf_fail(j, -2, ENOMEM, "malloc");
      ready = 0;
    }
  }
  if (ready) {
    int started = 0;
    for (int i = 1; i < j->nthreads; i++, started++)
      if (pthread_create(&j->threads[i].tid, NULL, pf_run, &j->threads[i]) != 0) break;
    pf_run(&j->threads[0]);
    for (int i = 1; i <= started; i++) pthread_join(j->threads[i].tid, NULL);
    if (j->failed == -1 && j->pack_path != NULL) pf_seal(j);
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
    }
  free(j->threads);
  free(j->paths);
  free(j->files);
  free(j->seen);
  free(j->seen_used);
  free(j->tables);
  free(j->table_counts);
  free(j->pack_path);
  free(j->idx);
  pthread_mutex_destroy(&j->lock);
  free(j);
}

static void pf_complete(napi_env env, napi_status status, void *data) {
  pf_job *j = data;
  napi_value out[9], arr;
  void *rp = NULL, *ip = NULL;
  if (status != napi_ok && j->failed == -1) {
    j->failed = -2;
    j->err = EIO;
    j->syscall = "cancelled";
  }
  size_t ilen = j->failed == -1 ? (size_t)j->objects * PF_IDX_ENTRY : 0;
  napi_status rs = napi_ok;
  if (j->live != NULL) {
    rp = j->live;
    rs = napi_get_reference_value(env, j->refs[4], &out[0]);
  } else rs = napi_create_buffer(env, (size_t)j->count * PF_RESULT + 1, &rp, &out[0]);
  if (rs != napi_ok || napi_create_buffer(env, ilen + 1, &ip, &out[1]) != napi_ok) {
    rp = ip = NULL;
    napi_get_undefined(env, &out[0]);
    napi_get_undefined(env, &out[1]);
    if (j->failed == -1) {
      j->failed = -2;
      j->err = ENOMEM;
      j->syscall = "result buffers";
    }
  }
  if (rp != NULL && ip != NULL) {
    if (ilen > 0) memcpy(ip, j->idx, ilen);
    for (uint32_t i = 0; i < j->count; i++) {
      unsigned char *r = (unsigned char *)rp + (size_t)i * PF_RESULT;
      memset(r, 0, PF_RESULT);
      pf_result(r, &j->files[i]);
      memcpy(r + 44, &j->files[i].count, 4);
      r[63] = 1;
    }
  }
  napi_create_double(env, (double)j->end, &out[2]);
  napi_create_double(env, (double)j->failed, &out[3]);
  napi_create_string_utf8(env, j->failed == -1 ? "" : errno_name(j->err), NAPI_AUTO_LENGTH, &out[4]);
  napi_create_string_utf8(env, j->syscall != NULL ? j->syscall : "", NAPI_AUTO_LENGTH, &out[5]);
  napi_create_double(env, (double)j->objects, &out[6]);
  napi_create_double(env, (double)j->new_bytes, &out[7]);
  napi_create_double(env, (double)j->stored_bytes, &out[8]);
  napi_create_array_with_length(env, 9, &arr);
  for (uint32_t i = 0; i < 9; i++) napi_set_element(env, arr, i, out[i]);
  napi_resolve_deferred(env, j->deferred, arr);
  napi_delete_async_work(env, j->work);
  pf_free(env, j);
}

static napi_value js_pack_files(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  size_t argc = 10;
  const char *usage = "packFiles(paths, count, keep, packPath, start, indexes, progress, level, threads[, results])";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 9 || !pf_sha_available()) {
    napi_throw_type_error(env, "EINVAL", pf_sha_available() ? usage : "packFiles: Node's OpenSSL SHA256 functions are not visible to addons");
    return NULL;
  }
  pf_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, "packFiles", "", ENOMEM);
  pthread_mutex_init(&j->lock, NULL);
  j->fd = -1;
  j->buffered_fd = -1;
  j->failed = -1;
  char *pathbuf = NULL;
  size_t pathlen = 0, keeplen = 0;
  uint32_t count = 0, ntables = 0;
  double start = 0;
  int32_t level = 0, threads = 0;
  napi_valuetype ptype;
  bool is_array = false;
  void *keep = NULL;
  if (napi_get_buffer_info(env, argv[0], (void **)&pathbuf, &pathlen) != napi_ok || napi_get_value_uint32(env, argv[1], &count) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &keep, &keeplen) != napi_ok || keeplen < count || napi_typeof(env, argv[3], &ptype) != napi_ok ||
      napi_get_value_double(env, argv[4], &start) != napi_ok || start < 0 || napi_is_array(env, argv[5], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[5], &ntables) != napi_ok || napi_get_value_int32(env, argv[7], &level) != napi_ok ||
      napi_get_value_int32(env, argv[8], &threads) != napi_ok || threads < 1 || threads > 64) {
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
  for (uint32_t i = 0; i < ntables; i++) {
    napi_value el;
    void *data = NULL;
    size_t len = 0;
    if (napi_get_element(env, argv[5], i, &el) != napi_ok || napi_get_buffer_info(env, el, &data, &len) != napi_ok || len % PF_IDX_ENTRY != 0) {
      pf_free(env, j);
      napi_throw_type_error(env, "EINVAL", "packFiles: indexes must be Buffers of 48-byte entries");
      return NULL;
    }
    j->tables[i] = data;
    j->table_counts[i] = len / PF_IDX_ENTRY;
  }
  napi_typedarray_type ttype;
  size_t tlen = 0;
  void *tdata = NULL;
  if (napi_get_typedarray_info(env, argv[6], &ttype, &tlen, &tdata, NULL, NULL) == napi_ok && ttype == napi_float64_array && tlen >= 2) j->progress = tdata;
  /* what the threads read stays alive until they are done */
  napi_value keepalive[4] = {argv[0], argv[2], argv[5], argv[6]};
  for (int i = 0; i < 4; i++)
    if (napi_create_reference(env, keepalive[i], 1, &j->refs[j->nrefs]) == napi_ok) j->nrefs++;
  /* results published as files finish: a zeroed Buffer of count * 64 bytes from the caller */
  if (argc > 9) {
    void *live = NULL;
    size_t llen = 0;
    napi_valuetype lt;
    if (napi_typeof(env, argv[9], &lt) == napi_ok && lt != napi_undefined && lt != napi_null) {
      if (napi_get_buffer_info(env, argv[9], &live, &llen) != napi_ok || llen < (size_t)count * PF_RESULT || j->nrefs != 4 ||
          napi_create_reference(env, argv[9], 1, &j->refs[4]) != napi_ok) {
        pf_free(env, j);
        napi_throw_type_error(env, "EINVAL", "packFiles: results must be a Buffer of count * 64 bytes");
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
#endif

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

static napi_value js_scandir(napi_env env, napi_callback_info info) {
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

static void free_bytes(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  free(data);
}

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

/* The manifest's volatile line of an lstat, exactly as manifest.ts's volatileOf writes it:
 * ["mtime","atime","ctime","ino","dev",nlink] with nanosecond times. Returns its length. */
static size_t volatile_line(char *out, const struct stat *st) {
  size_t k = 0;
  out[k++] = '[';
  out[k++] = '"';
  k += ns_text(out + k, st->st_mtim);
  memcpy(out + k, "\",\"", 3), k += 3;
  k += ns_text(out + k, st->st_atim);
  memcpy(out + k, "\",\"", 3), k += 3;
  k += ns_text(out + k, st->st_ctim);
  k += (size_t)sprintf(out + k, "\",\"%llu\",\"%llu\",%llu]", (unsigned long long)st->st_ino, (unsigned long long)st->st_dev, (unsigned long long)st->st_nlink);
  return k;
}

/* A line with its access time cut out (the second field): [start, a) + [b, end). */
static int cut_atime(const char *l, size_t n, size_t *a, size_t *b) {
  const char *x = memmem(l, n, "\",\"", 3);
  if (x == NULL) return -1;
  const char *y = memmem(x + 3, n - (size_t)(x + 3 - l), "\",\"", 3);
  if (y == NULL) return -1;
  *a = (size_t)(x - l);
  *b = (size_t)(y - l);
  return 0;
}

/* Same mtime, ctime, inode, device and link count (the access time may differ). */
static int same_but_atime(const char *p, size_t pn, const char *c, size_t cn) {
  size_t pa, pb, ca, cb;
  if (cut_atime(p, pn, &pa, &pb) || cut_atime(c, cn, &ca, &cb)) return 0;
  return pa == ca && memcmp(p, c, pa) == 0 && pn - pb == cn - cb && memcmp(p + pb, c + cb, pn - pb) == 0;
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
  char line[256];
  size_t ln = volatile_line(line, st);
  int carried = 0;
  t->entries++;
  if (t->pid != NULL) {
    /* Skip previous entries that come before this one in walk order (they were removed). */
    while (t->pvalid && t->ppath_len >= 0 && cmp_walk(t->ppath, (size_t)t->ppath_len, rel, rel_len) < 0) prev_next(t);
    if (t->pvalid && t->ppath_len == (long)rel_len && memcmp(t->ppath, rel, rel_len) == 0) {
      const char *pl = t->pvol + t->pvol_at;
      const char *pnl = memchr(pl, '\n', t->pvol_len - t->pvol_at);
      size_t pn = pnl ? (size_t)(pnl - pl) : t->pvol_len - t->pvol_at;
      if (t->carry && (S_ISDIR(st->st_mode) || st->st_nlink == 1) && same_but_atime(pl, pn, line, ln)) carried = 1;
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
        b_put(&t->vol, line, ln);
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
 * scanTree(root, prevIdentity, prevVolatile, carry, xattrs[, threads[, files]]) -> [count, ops, full, volatile, xattrs[, files, sizes]]
 * `threads`: how many threads list directories ahead of the walk (see walk_prefetched); 0 or
 * absent: one a core, at most 4; 1: none, the walk lists each directory itself. With `files`
 * true, two more Buffers: the absolute paths of the regular files described in full (of the paths
 * of a hard-linked inode, the first in walk order), NUL-terminated back to back, and their sizes
 * (u64 each): what a first snapshot reads, ready before any JavaScript looks at the records.
 * The whole tree under root in walk order (depth first, names in byte order, symlinks not
 * followed; the root itself first, with the path ""). When the previous snapshot's identity and
 * volatile lines are given (Buffers, one line per entry, same walk order), each entry is matched
 * to the previous entry with its path by a merge of the two orders; an entry that is a directory
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
static napi_value js_scan_tree(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  size_t argc = 7;
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
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || (argc > 5 && napi_get_value_int32(env, argv[5], &threads) != napi_ok) || threads < 0 ||
      (argc > 6 && napi_get_value_bool(env, argv[6], &want_files) != napi_ok) ||
      get_string(env, argv[0], abs, MAX_PATH) || napi_typeof(env, argv[1], &vt1) != napi_ok || napi_typeof(env, argv[2], &vt2) != napi_ok ||
      napi_get_value_bool(env, argv[3], &carry) != napi_ok || napi_get_value_bool(env, argv[4], &want_xattrs) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "scanTree(root, prevIdentity, prevVolatile, carry, xattrs[, threads[, files]])");
    goto out;
  }
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
    if (napi_create_external_buffer(env, bs[k]->len, bs[k]->p, free_bytes, NULL, &parts[k]) != napi_ok) goto out;
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

/*
 * flockProbe(path) -> boolean: whether a flock(2) lock is held on the file (dockerd's lock on
 * volumes/metadata.db), found by trying a non-blocking exclusive lock on a read-only descriptor
 * and releasing it at once. Nothing is written; the file is not read.
 */
static napi_value js_flock_probe(napi_env env, napi_callback_info info) {
  char path[MAX_PATH];
  if (path_arg(env, info, path, "flockProbe(path)")) return NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return throw_errno(env, "open", path, errno);
  int held = 0;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    if (e != EWOULDBLOCK) {
      close(fd);
      return throw_errno(env, "flock", path, e);
    }
    held = 1;
  } else flock(fd, LOCK_UN);
  close(fd);
  napi_value result;
  napi_get_boolean(env, held, &result);
  return result;
}

/*
 * startWriteback(fd, offset, length): asks the kernel to start writing a range of a file to disk
 * now (sync_file_range with SYNC_FILE_RANGE_WRITE, which does not wait for it), so that the
 * fsync at the end of a long write waits for the last ranges only. Errors are ignored: this is
 * a hint, and the fsync that follows reports any failure.
 */
static napi_value js_start_writeback(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd = -1;
  double off = 0, len = 0;
  if (get_args(env, info, 3, argv) || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_double(env, argv[1], &off) != napi_ok ||
      napi_get_value_double(env, argv[2], &len) != napi_ok || off < 0 || len < 0) {
    napi_throw_type_error(env, "EINVAL", "startWriteback(fd, offset, length)");
    return NULL;
  }
#ifdef __linux__
  sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
#endif
  return NULL;
}

/*
 * alignedBuffer(size) -> Buffer whose memory starts on a 4096-byte boundary (posix_memalign), as
 * O_DIRECT writes need; freed when the Buffer is collected.
 */
static void free_aligned(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value js_aligned_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  double size = 0;
  if (get_args(env, info, 1, argv) || napi_get_value_double(env, argv[0], &size) != napi_ok || size < 1 || size > (double)(1u << 30)) {
    napi_throw_type_error(env, "EINVAL", "alignedBuffer(size)");
    return NULL;
  }
  void *mem = NULL;
  if (posix_memalign(&mem, 4096, (size_t)size) != 0) return throw_errno(env, "posix_memalign", "", ENOMEM);
  napi_value out;
  if (napi_create_external_buffer(env, (size_t)size, mem, free_aligned, NULL, &out) != napi_ok) {
    free(mem);
    napi_throw_error(env, "ENOMEM", "alignedBuffer: no external buffer");
    return NULL;
  }
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
      {"lutimens", NULL, js_lutimens, NULL, NULL, NULL, napi_default, NULL},
      {"scandir", NULL, js_scandir, NULL, NULL, NULL, napi_default, NULL},
      {"scanTree", NULL, js_scan_tree, NULL, NULL, NULL, napi_default, NULL},
      {"flockProbe", NULL, js_flock_probe, NULL, NULL, NULL, napi_default, NULL},
      {"startWriteback", NULL, js_start_writeback, NULL, NULL, NULL, napi_default, NULL},
      {"alignedBuffer", NULL, js_aligned_buffer, NULL, NULL, NULL, napi_default, NULL},
#ifdef HAVE_ZSTD
      {"zstdCompress", NULL, js_zstd_compress, NULL, NULL, NULL, napi_default, NULL},
      {"zstdDecompress", NULL, js_zstd_decompress, NULL, NULL, NULL, napi_default, NULL},
      {"zstdDecompressAsync", NULL, js_zstd_decompress_async, NULL, NULL, NULL, napi_default, NULL},
      {"zstdCompressAsync", NULL, js_zstd_compress_async, NULL, NULL, NULL, napi_default, NULL},
      {"zstdCompressInto", NULL, js_zstd_compress_into, NULL, NULL, NULL, napi_default, NULL},
      {"packFiles", NULL, js_pack_files, NULL, NULL, NULL, napi_default, NULL},
#endif
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
