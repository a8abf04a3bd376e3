{
  "targets": [
    {
      "target_name": "cak_ec_point",
      "sources": ["ec_point.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
