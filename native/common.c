/* Helpers shared by the addon's parts (see common.h). */
#include "common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *errno_name(int e) {
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
  case EXDEV: return "EXDEV";
  case ENOSYS: return "ENOSYS";
  case EAGAIN: return "EAGAIN";
  case ENOTEMPTY: return "ENOTEMPTY";
  case EBUSY: return "EBUSY";
  default: return "EUNKNOWN";
  }
}

napi_value throw_errno(napi_env env, const char *syscall, const char *path, int e) {
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

int get_string(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) return -1;
  if (len >= cap - 1) return -1;
  return 0;
}

int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "EINVAL", "missing arguments");
    return -1;
  }
  return 0;
}

/* The one argument of a function that takes a path; on failure a TypeError naming the call. */
int path_arg(napi_env env, napi_callback_info info, char *path, const char *usage) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv) || get_string(env, argv[0], path, MAX_PATH)) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  return 0;
}

int get_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}


void free_malloced(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}
