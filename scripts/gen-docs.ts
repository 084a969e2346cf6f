/**
 * Writes the generated reference tables from the code's single sources of truth:
 * docs/errors.md (error catalogue and close codes), docs/configuration.md and .env.example (CONFIG_SPEC),
 * and the error-code enum of docs/openapi.yaml (between its BEGIN/END generated markers).
 * `test/unit/docs.test.ts` fails when the committed files differ from what this produces.
 * Run: npx tsx scripts/gen-docs.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_SPEC } from '../src/config/config.js';
import { CLOSE_CODES, ERROR_CATALOGUE } from '../src/errors/catalogue.js';

export function errorsDoc(): string {
  const rows = Object.entries(ERROR_CATALOGUE).map(([code, e]) => `| \`${code}\` | ${e.num} | ${e.http} | ${e.temporary ? 'yes' : 'no'} | ${e.text} |`);
  const closes = Object.entries(CLOSE_CODES).map(([name, c]) => `| ${c.code} | \`${name}\` | ${c.reconnect ? 'yes' : 'no'} | ${c.text} |`);
  return `# Error catalogue

Generated from \`src/errors/catalogue.ts\` by \`npx tsx scripts/gen-docs.ts\`; a test fails when this file and
the catalogue disagree. Codes are stable: clients branch on \`code\`, never on \`message\`.

Every REST error body is \`{"error": {"code": "<CODE>", "message": "<human text>"}}\` with the HTTP status
below. On \`/ws\` the same object arrives as \`{"type": "error", "ref": <your ref or null>, "error": {…}}\`.
\`num\` is the numeric form for binary faces. \`temporary\` = retrying the same request later may succeed.

| code | num | HTTP | temporary | meaning |
|---|---|---|---|---|
${rows.join('\n')}

## WebSocket close codes

| close code | name | reconnect? | meaning |
|---|---|---|---|
${closes.join('\n')}
`;
}

const ENUM_BLOCK = /(\n( *)# BEGIN generated from src\/errors\/catalogue\.ts[^\n]*\n)[\s\S]*?(\n *# END generated)/;

/** `yaml` (docs/openapi.yaml) with its ErrorCode enum replaced by the catalogue's codes, in catalogue order. */
export function openapiWithErrorCodes(yaml: string): string {
  const m = ENUM_BLOCK.exec(yaml);
  if (!m) throw new Error('docs/openapi.yaml has no generated ErrorCode block');
  const indent = m[2] ?? '';
  const list = Object.keys(ERROR_CATALOGUE).map((code) => `${indent}  - ${code}`).join('\n');
  return yaml.replace(ENUM_BLOCK, (_all, head: string, _i: string, tail: string) => `${head}${indent}enum:\n${list}${tail}`);
}

export function configDoc(): string {
  const rows = Object.entries(CONFIG_SPEC).map(([key, s]) => {
    const range = 'values' in s ? ` (one of ${s.values.map((v) => `\`${v}\``).join(', ')})` : '';
    const def = s.default === '' ? '(empty)' : `\`${s.default}\``;
    return `| \`${key}\` | ${s.kind} | ${def} | ${s.doc}${range} |`;
  });
  return `# Configuration

Generated from \`src/config/config.ts\` by \`npx tsx scripts/gen-docs.ts\`; a test keeps it in step with the code.

Settings come from the environment, and from a \`.env\` file in the working directory for variables the
environment does not set. Every value is validated at start; the server refuses to start and lists every
problem at once instead of falling back to a default (exit code 2). A variable that is not set takes its
default; one set to an empty value (\`KEY=\`) is empty, never "unset": an empty list (\`RATE_LIMIT_EXEMPT=\`
exempts nothing), an empty string where the default is empty, and refused, with its name, where an empty
value means nothing (a number, a switch, a choice, or a string such as \`HOST\` with a non-empty default).

| variable | type | default | meaning |
|---|---|---|---|
${rows.join('\n')}
`;
}

export function envExample(): string {
  const lines = Object.entries(CONFIG_SPEC).map(([key, s]) => `# ${s.doc}\n#${key}=${s.default}`);
  return `# relation-im-proxy configuration. Copy to .env and uncomment what you change.\n# Every variable is documented in docs/configuration.md.\n\n${lines.join('\n\n')}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  writeFileSync(path.join(root, 'docs/errors.md'), errorsDoc());
  writeFileSync(path.join(root, 'docs/configuration.md'), configDoc());
  writeFileSync(path.join(root, '.env.example'), envExample());
  const openapi = path.join(root, 'docs/openapi.yaml');
  writeFileSync(openapi, openapiWithErrorCodes(readFileSync(openapi, 'utf8')));
}
