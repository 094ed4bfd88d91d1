/*
 * dataroot's native addon: what is shared by its three parts (syscalls.c: the system calls Node
 * lacks; treescan.c: a directory or a whole tree with lstat in one call; pipeline.c: the snapshot
 * content pipeline and zstd). Built by node-gyp from binding.gyp. Errors are thrown as Error
 * objects with `code` set to the errno name (ENOENT, EPERM, ...).
 */
#ifndef DATAROOT_COMMON_H
#define DATAROOT_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stddef.h>
#include <node_api.h>

#define MAX_PATH 4096
#define MAX_NAME 256

const char *errno_name(int e);
/* Throws an Error coded with the errno name, naming the call and the path; returns NULL. */
napi_value throw_errno(napi_env env, const char *syscall, const char *path, int e);
int get_string(napi_env env, napi_value v, char *buf, size_t cap);
int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
int path_arg(napi_env env, napi_callback_info info, char *path, const char *usage);
int get_u32(napi_env env, napi_value v, uint32_t *out);
int get_i64(napi_env env, napi_value v, int64_t *out);
/* A finalizer for external buffers allocated with malloc. */
void free_malloced(napi_env env, void *data, void *hint);

/* syscalls.c */
napi_value js_lgetxattr(napi_env env, napi_callback_info info);
napi_value js_llistxattr(napi_env env, napi_callback_info info);
napi_value js_lsetxattr(napi_env env, napi_callback_info info);
napi_value js_mknod(napi_env env, napi_callback_info info);
napi_value js_lutimens(napi_env env, napi_callback_info info);
napi_value js_flock_probe(napi_env env, napi_callback_info info);
napi_value js_open_beneath(napi_env env, napi_callback_info info);
/* treescan.c */
napi_value js_scandir(napi_env env, napi_callback_info info);
napi_value js_scan_tree(napi_env env, napi_callback_info info);
/* pipeline.c */
napi_value js_zstd_decompress(napi_env env, napi_callback_info info);
napi_value js_zstd_decompress_async(napi_env env, napi_callback_info info);
napi_value js_zstd_compress_async(napi_env env, napi_callback_info info);
napi_value js_pack_files(napi_env env, napi_callback_info info);
#endif
