# node-gyp build of the same CPU addon (npm run build:gyp). CMakeLists.txt is the
# primary build (it also compiles CUDA and the C++ tests); this file proves the
# addon builds with the other standard tool too. Sources are listed by directory
# so new files are picked up.
{
  "targets": [
    {
      "target_name": "tessera",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native/core').filter(f => f.endsWith('.cc')).map(f => 'native/core/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/cpu').filter(f => f.endsWith('.cc')).map(f => 'native/cpu/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/napi').filter(f => f.endsWith('.cc')).map(f => 'native/napi/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/dist').filter(f => f.endsWith('.cc')).map(f => 'native/dist/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "native",
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node native/dist/mpi-flags.js include_dirs)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "<!@(node native/dist/mpi-flags.js defines)"],
      "libraries": ["<!@(node native/dist/mpi-flags.js libraries)", "-ldl", "-pthread"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fexceptions", "-frtti", "-fno-math-errno"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
