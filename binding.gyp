{
  "targets": [
    {
      "target_name": "userns",
      "sources": ["<!@(cat native/sources.txt)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-Wl,-z,now"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"]
    },
    {
      "target_name": "userns-init",
      "conditions": [
        ["target_arch=='x64'", {
          "type": "executable",
          "sources": ["native/init/init.c"],
          "cflags": ["-O2", "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-fno-pie", "-Wall"],
          "ldflags": ["-static", "-nostdlib", "-no-pie"],
          "cflags!": ["-fPIC", "-pthread"],
          "ldflags!": ["-pthread", "-rdynamic"],
          "libraries!": ["-lpthread", "-ldl"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
