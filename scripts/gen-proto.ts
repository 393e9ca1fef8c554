// Write proto/generated/* from the TypeScript sources (run: npm run gen).
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generatedArtifacts } from '../proto/artifacts.js';

const dir = fileURLToPath(new URL('../proto/generated/', import.meta.url));
mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries(generatedArtifacts())) {
  writeFileSync(dir + name, text);
  process.stdout.write(`wrote proto/generated/${name}\n`);
}
