// Test helpers for other packages: sample messages of every kind, seeded random data.
export { randomFloats, sampleMessages, samplePayloads, seededRandom } from "./wire/fixtures.ts";
export { frameMutations } from "./wire/mutations.ts";
