import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * `docs/openapi.yaml`, the REST reference, as the JSON served at `GET /openapi.json`. Found from this
 * module's place whether it runs from `src/` (tsx) or `dist/src/` (the build); read and converted once,
 * at start, so a missing or broken file stops the server instead of answering 500 later.
 */
const CANDIDATES = ['../../../docs/openapi.yaml', '../../../../docs/openapi.yaml'];

export function openapiPath(): string {
  for (const rel of CANDIDATES) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('docs/openapi.yaml not found beside the server');
}

/** The document as an object (YAML anchors expanded, so the JSON holds no aliases). */
export function loadOpenapi(file = openapiPath()): Record<string, unknown> {
  const doc: unknown = parse(readFileSync(file, 'utf8'), { maxAliasCount: 1000 });
  if (typeof doc !== 'object' || doc === null || !('openapi' in doc)) throw new Error(`${file} is not an OpenAPI document`);
  return doc as Record<string, unknown>;
}

let cached: string | undefined;

/** The JSON text of the document, converted on first use and then kept. */
export function openapiJson(): string {
  cached ??= JSON.stringify(loadOpenapi());
  return cached;
}
