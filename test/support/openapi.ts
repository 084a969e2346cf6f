import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { loadOpenapi } from '../../src/gateway/http/openapi.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const DOC_ID = 'openapi.json';
export const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

/** Every `$ref: '#/…'` made absolute against the document's id, so schemas compile outside it. */
function absolute(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(absolute);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) out[k] = k === '$ref' && typeof x === 'string' && x.startsWith('#/') ? `${DOC_ID}${x}` : absolute(x);
  return out;
}

export interface Answer {
  status: number;
  contentType: string | null;
  text: string;
}

/**
 * Checks real answers against docs/openapi.yaml with ajv in its JSON Schema 2020-12 mode (the dialect
 * of OpenAPI 3.1 schemas), strict, so a misspelt keyword in the document fails too. An answer whose
 * status, media type or body the document does not describe is an error; so is an undocumented query
 * parameter. Records which operation answered which status, for the coverage check.
 */
export class OpenApiChecker {
  readonly doc: Obj;
  readonly seen = new Map<string, Set<number>>();
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(doc: Obj = loadOpenapi()) {
    this.doc = doc;
    this.ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
    addFormats.default(this.ajv);
    this.ajv.addKeyword({ keyword: 'components' }); // the root of the added document, holding the schemas
    this.ajv.addSchema({ $id: DOC_ID, components: absolute({ schemas: (doc['components'] as Obj)['schemas'] }) });
  }

  /** Follows a `$ref` to a component (responses, parameters, request bodies) inside the document. */
  deref(v: unknown): Obj {
    let cur = v;
    for (let i = 0; isObj(cur) && typeof cur['$ref'] === 'string'; i++) {
      if (i > 10) throw new Error('$ref loop');
      let node: unknown = this.doc;
      for (const part of (cur['$ref'] as string).replace(/^#\//, '').split('/')) node = isObj(node) ? node[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
      if (node === undefined) throw new Error(`unresolved $ref ${String(cur['$ref'])}`);
      cur = node;
    }
    if (!isObj(cur)) throw new Error('expected an object');
    return cur;
  }

  operations(): { path: string; method: string; op: Obj; pathItem: Obj }[] {
    const out: { path: string; method: string; op: Obj; pathItem: Obj }[] = [];
    for (const [path, item] of Object.entries(this.doc['paths'] as Obj)) {
      const pathItem = item as Obj;
      for (const method of METHODS) if (isObj(pathItem[method])) out.push({ path, method, op: pathItem[method] as Obj, pathItem });
    }
    return out;
  }

  /** The documented path template a concrete path matches (`/users/0xab…` → `/users/{address}`). */
  template(pathname: string): string {
    for (const path of Object.keys(this.doc['paths'] as Obj)) {
      const re = new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`);
      if (re.test(pathname)) return path;
    }
    throw new Error(`${pathname} is not a documented path`);
  }

  validator(schema: unknown, key: string): ValidateFunction {
    let v = this.compiled.get(key);
    if (!v) {
      v = this.ajv.compile(absolute(schema) as Obj);
      this.compiled.set(key, v);
    }
    return v;
  }

  private op(method: string, url: string): { path: string; op: Obj; params: Obj[] } {
    const path = this.template(new URL(url, 'http://x').pathname);
    const item = (this.doc['paths'] as Obj)[path] as Obj;
    const op = item[method.toLowerCase()];
    if (!isObj(op)) throw new Error(`${method} ${path} is not documented`);
    const params = [...((item['parameters'] as unknown[]) ?? []), ...((op['parameters'] as unknown[]) ?? [])].map((p) => this.deref(p));
    return { path, op, params };
  }

  /** Checks that a request the server is about to get is one the document allows (parameters and body). */
  request(method: string, url: string, body?: unknown): void {
    const { path, op, params } = this.op(method, url);
    const where = `${method} ${path}`;
    const query = new URL(url, 'http://x').searchParams;
    for (const name of new Set(query.keys())) {
      if (!params.some((p) => p['in'] === 'query' && p['name'] === name)) throw new Error(`${where}: query parameter "${name}" is not documented`);
    }
    if (body !== undefined) {
      const rb = this.deref(op['requestBody']);
      const schema = ((rb['content'] as Obj)['application/json'] as Obj | undefined)?.['schema'];
      if (!schema) throw new Error(`${where}: no JSON request body documented`);
      const v = this.validator(schema, `${where} request`);
      if (!v(body)) throw new Error(`${where}: the document refuses this request body: ${this.ajv.errorsText(v.errors)}`);
    }
  }

  /** Checks a real answer against the operation's documented response for its status. */
  response(method: string, url: string, a: Answer): void {
    const { path, op } = this.op(method, url);
    const where = `${method} ${path} → ${a.status}`;
    const responses = op['responses'] as Obj;
    const documented = responses[String(a.status)];
    if (documented === undefined) throw new Error(`${where}: status not documented (body ${a.text.slice(0, 300)})`);
    const r = this.deref(documented);
    const content = r['content'] as Obj | undefined;
    if (!content) {
      if (a.text !== '') throw new Error(`${where}: documented without a body, got ${a.text.slice(0, 200)}`);
    } else if (method.toUpperCase() !== 'HEAD') {
      const type = (a.contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
      const media = Object.keys(content).find((m) => m === type || m === '*/*');
      if (!media) throw new Error(`${where}: content-type ${type} not documented (${Object.keys(content).join(', ')})`);
      if (media === 'application/json') {
        let json: unknown;
        try {
          json = JSON.parse(a.text);
        } catch {
          throw new Error(`${where}: body is not JSON: ${a.text.slice(0, 200)}`);
        }
        const v = this.validator((content[media] as Obj)['schema'], `${where} ${media}`);
        if (!v(json)) throw new Error(`${where}: answer differs from the document: ${this.ajv.errorsText(v.errors)}\n${a.text.slice(0, 600)}`);
      }
    }
    const key = `${method.toUpperCase()} ${path}`;
    if (!this.seen.has(key)) this.seen.set(key, new Set());
    this.seen.get(key)?.add(a.status);
  }
}
