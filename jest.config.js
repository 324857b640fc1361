// The device tests run the models on a simulated host device (cpu:1): the workers inherit
// this variable, which the addon reads once when it first asks for the device count.
process.env.TESSERA_HOST_DEVICES = process.env.TESSERA_HOST_DEVICES || '2';

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/js'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'test/tsconfig.json' }] },
  testTimeout: 120000,
};
