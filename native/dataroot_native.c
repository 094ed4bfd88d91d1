/*
 * dataroot's one native addon: the few system calls Node lacks and a data-root needs.
 *   lgetxattr(path, name) -> Buffer | null        (ENODATA / ENOTSUP -> null)
 *   llistxattr(path) -> string[]
 *   lsetxattr(path, name, Buffer)
 *   mknod(path, mode, major, minor)                (mode includes S_IFCHR / S_IFBLK / S_IFIFO)
 *   lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)   (utimensat, AT_SYMLINK_NOFOLLOW)
 * Errors are thrown as Error objects with `code` set to the errno name (ENOENT, EPERM, ...).
 * Built by scripts/build-native.mjs with the C compiler and Node's own headers (no node-gyp).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <node_api.h>

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
  napi_value argv[1];
  char path[MAX_PATH];
  if (get_args(env, info, 1, argv) || get_string(env, argv[0], path, sizeof path)) {
    napi_throw_type_error(env, "EINVAL", "llistxattr(path)");
    return NULL;
  }
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
      {"lutimens", NULL, js_lutimens, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
