/*
 * dataroot's native addon: the exports, from its three parts (see common.h). Built by node-gyp
 * from binding.gyp at install (scripts/build-native.mjs).
 */
#include "common.h"

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      FN("lgetxattr", js_lgetxattr),
      FN("llistxattr", js_llistxattr),
      FN("lsetxattr", js_lsetxattr),
      FN("mknod", js_mknod),
      FN("lutimens", js_lutimens),
      FN("flockProbe", js_flock_probe),
      FN("openBeneath", js_open_beneath),
      FN("scandir", js_scandir),
      FN("scanTree", js_scan_tree),
      FN("zstdDecompress", js_zstd_decompress),
      FN("zstdDecompressAsync", js_zstd_decompress_async),
      FN("zstdCompressAsync", js_zstd_compress_async),
      FN("packFiles", js_pack_files),
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
