{
  "targets": [
    {
      "target_name": "realtime",
      "sources": ["realtime.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
