/*
 * dataroot's one native addon: the few system calls Node lacks and a data-root needs.
 *   lgetxattr(path, name) -> Buffer | null        (ENODATA / ENOTSUP -> null)
 *   llistxattr(path) -> string[]
 *   lsetxattr(path, name, Buffer)
 *   mknod(path, mode, major, minor)                (mode includes S_IFCHR / S_IFBLK / S_IFIFO)
 *   lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)   (utimensat, AT_SYMLINK_NOFOLLOW)
 *   flockProbe(path) -> boolean (true: another open file description holds a flock on it)
 *   startWriteback(fd, offset, length)   (sync_file_range WRITE: the disk starts on it now, fsync later waits less)
 *   scandir(path) -> Buffer   (a directory's entries with their lstat, packed: see js_scandir)
 *   zstdCompress(buffer, level) -> Buffer, zstdDecompress(buffer, size) -> Buffer   (with libzstd only:
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
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <dirent.h>
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
  size_t n = ZSTD_compress(dst, cap, src, len, level);
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

/* zstdCompressAsync(buffer, level) -> Promise<Buffer>: the same, on the libuv thread pool. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input;
  void *src;
  size_t len;
  int level;
  void *dst;
  size_t n;
  const char *err;
} zjob;

static void zjob_execute(napi_env env, void *data) {
  (void)env;
  zjob *j = data;
  size_t cap = ZSTD_compressBound(j->len);
  j->dst = malloc(cap > 0 ? cap : 1);
  if (j->dst == NULL) {
    j->err = "out of memory";
    return;
  }
  j->n = ZSTD_compress(j->dst, cap, j->src, j->len, j->level);
  if (ZSTD_isError(j->n)) j->err = ZSTD_getErrorName(j->n);
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
  } else if (napi_create_external_buffer(env, j->n, j->dst, free_buffer, NULL, &result) == napi_ok) {
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

static napi_value js_zstd_compress_async(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  zjob *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, "zstdCompressAsync", "", ENOMEM);
  int32_t level = 1;
  if (get_args(env, info, 2, argv) || napi_get_buffer_info(env, argv[0], &j->src, &j->len) != napi_ok || napi_get_value_int32(env, argv[1], &level) != napi_ok) {
    free(j);
    napi_throw_type_error(env, "EINVAL", "zstdCompressAsync(buffer, level)");
    return NULL;
  }
  j->level = level;
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_reference(env, argv[0], 1, &j->input); /* keep the input alive while the pool reads it */
  napi_create_string_utf8(env, "zstdCompress", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, zjob_execute, zjob_complete, j, &j->work);
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

static napi_value js_scandir(napi_env env, napi_callback_info info) {
  char path[MAX_PATH];
  if (path_arg(env, info, path, "scandir(path)")) return NULL;
  int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return throw_errno(env, "open", path, errno);
  DIR *d = fdopendir(dfd);
  if (d == NULL) {
    int e = errno;
    close(dfd);
    return throw_errno(env, "fdopendir", path, e);
  }
  /* Names first (one arena), sorted; then the lstat of each. */
  size_t ncap = 64, count = 0, acap = 1 << 14, alen = 0;
  size_t *offs = malloc(ncap * sizeof *offs);
  char *arena = malloc(acap);
  unsigned char *out = NULL;
  char **names = NULL;
  int e = 0;
  const char *failed = "scandir";
  if (offs == NULL || arena == NULL) {
    e = ENOMEM;
    goto fail;
  }
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    size_t nl = strlen(n) + 1;
    if (count == ncap) {
      size_t *g = realloc(offs, (ncap *= 2) * sizeof *offs);
      if (g == NULL) { e = ENOMEM; goto fail; }
      offs = g;
    }
    if (alen + nl > acap) {
      while (alen + nl > acap) acap *= 2;
      char *g = realloc(arena, acap);
      if (g == NULL) { e = ENOMEM; goto fail; }
      arena = g;
    }
    memcpy(arena + alen, n, nl);
    offs[count++] = alen;
    alen += nl;
    errno = 0;
  }
  if (errno != 0) {
    e = errno;
    failed = "readdir";
    goto fail;
  }
  names = malloc((count + 1) * sizeof *names);
  out = malloc(alen + count * (2 + 8 * SCAN_FIELDS) + 1);
  if (names == NULL || out == NULL) { e = ENOMEM; goto fail; }
  for (size_t i = 0; i < count; i++) names[i] = arena + offs[i];
  qsort(names, count, sizeof *names, cmp_names);
  size_t len = 0;
  for (size_t i = 0; i < count; i++) {
    const char *n = names[i];
    struct stat st;
    if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue; /* vanished meanwhile */
      e = errno;
      failed = "fstatat";
      goto fail;
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
  closedir(d);
  napi_value result;
  void *data = NULL;
  if (napi_create_buffer_copy(env, len, out, &data, &result) != napi_ok) result = NULL;
  free(out);
  free(names);
  free(offs);
  free(arena);
  return result;
fail:
  closedir(d);
  free(out);
  free(names);
  free(offs);
  free(arena);
  return throw_errno(env, failed, path, e);
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
      {"lutimens", NULL, js_lutimens, NULL, NULL, NULL, napi_default, NULL},
      {"scandir", NULL, js_scandir, NULL, NULL, NULL, napi_default, NULL},
      {"flockProbe", NULL, js_flock_probe, NULL, NULL, NULL, napi_default, NULL},
      {"startWriteback", NULL, js_start_writeback, NULL, NULL, NULL, napi_default, NULL},
#ifdef HAVE_ZSTD
      {"zstdCompress", NULL, js_zstd_compress, NULL, NULL, NULL, napi_default, NULL},
      {"zstdDecompress", NULL, js_zstd_decompress, NULL, NULL, NULL, napi_default, NULL},
      {"zstdCompressAsync", NULL, js_zstd_compress_async, NULL, NULL, NULL, napi_default, NULL},
      {"zstdCompressInto", NULL, js_zstd_compress_into, NULL, NULL, NULL, napi_default, NULL},
#endif
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
