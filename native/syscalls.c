/*
 * The system calls Node lacks and a data-root needs:
 *   lgetxattr(path, name) -> Buffer | null        (ENODATA / ENOTSUP -> null)
 *   llistxattr(path) -> string[]
 *   lsetxattr(path, name, Buffer)
 *   mknod(path, mode, major, minor)                (mode includes S_IFCHR / S_IFBLK / S_IFIFO)
 *   lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)   (utimensat, AT_SYMLINK_NOFOLLOW)
 *   flockProbe(path) -> boolean (true: another open file description holds a flock on it)
 *   openBeneath(base, rel, flags, mode) -> fd      (openat2 confined beneath base)
 */
#include "common.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <linux/openat2.h>

napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
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

napi_value js_llistxattr(napi_env env, napi_callback_info info) {
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

napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
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


napi_value js_mknod(napi_env env, napi_callback_info info) {
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

napi_value js_lutimens(napi_env env, napi_callback_info info) {
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

/*
 * flockProbe(path) -> boolean: whether a flock(2) lock is held on the file (dockerd's lock on
 * volumes/metadata.db), found by trying a non-blocking exclusive lock on a read-only descriptor
 * and releasing it at once. Nothing is written; the file is not read.
 */
napi_value js_flock_probe(napi_env env, napi_callback_info info) {
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
 * openBeneath(base, rel, flags, mode) -> fd: openat2(2) of `rel` relative to an O_PATH descriptor
 * of the directory `base`, with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS:
 * the kernel refuses a path that leaves base (`..` above it, an absolute path: EXDEV), a symlink
 * in any component (ELOOP) and /proc magic links. `flags` and `mode` are open(2)'s (O_CLOEXEC is
 * added). The caller owns the descriptor. ENOSYS where the kernel lacks openat2 (before 5.6).
 */
napi_value js_open_beneath(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char base[MAX_PATH], rel[MAX_PATH];
  int64_t flags = 0, mode = 0;
  if (get_args(env, info, 4, argv) || get_string(env, argv[0], base, sizeof base) || get_string(env, argv[1], rel, sizeof rel) || get_i64(env, argv[2], &flags) ||
      get_i64(env, argv[3], &mode) || flags < 0 || flags > 0x7fffffff || mode < 0 || mode > 07777) {
    napi_throw_type_error(env, "EINVAL", "openBeneath(base, rel, flags, mode)");
    return NULL;
  }
  int dirfd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return throw_errno(env, "open", base, errno);
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)flags | O_CLOEXEC;
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? (uint64_t)mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  do fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  int e = errno;
  close(dirfd);
  if (fd < 0) return throw_errno(env, "openat2", rel, e);
  napi_value out;
  napi_create_int32(env, (int32_t)fd, &out);
  return out;
}
