#!/usr/bin/env node
// binding.gyp's MPI detection (node-gyp has no find_package): prints the flags of one
// kind for Open MPI's compiler wrapper, or nothing when MPI is absent, so that
// `npm run build:gyp` builds with MPI where it is installed and without it elsewhere.
//   node native/dist/mpi-flags.js defines | include_dirs | libraries
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

function showme(what) {
  try {
    return execFileSync('mpicc', [`--showme:${what}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

const incdirs = (showme('incdirs') || '').split(/\s+/).filter(Boolean);
const found = incdirs.some((d) => fs.existsSync(path.join(d, 'mpi.h')));
const kind = process.argv[2];
if (!found) process.exit(0);
if (kind === 'defines') console.log('TESSERA_WITH_MPI=1');
else if (kind === 'include_dirs') console.log(incdirs.join(' '));
else if (kind === 'libraries') console.log(showme('link') || '');
else {
  console.error(`mpi-flags.js: expected 'defines', 'include_dirs' or 'libraries', got '${kind}'`);
  process.exit(2);
}
