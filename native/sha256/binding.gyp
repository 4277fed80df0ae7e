{
  "targets": [
    {
      "target_name": "sha256_ctx",
      "sources": ["sha256_ctx.c"],
      "cflags": ["-O2", "-Wall", "-Wno-deprecated-declarations"]
    }
  ]
}
