{
  "targets": [
    {
      "target_name": "dataroot_native",
      "sources": ["native/addon.c", "native/common.c", "native/syscalls.c", "native/treescan.c", "native/pipeline.c"],
      "cflags": ["-O2", "-Wall", "-Werror", "-pthread"],
      "cflags_c": ["-std=gnu11"],
      "libraries": ["-lzstd", "-pthread"]
    }
  ]
}
