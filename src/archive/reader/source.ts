import { APP_NAME, TAG, type Tag } from '../format.js';

/** A transaction as a reader sees it: id, owner address and tags. */
export interface ChainTx {
  id: string;
  owner: string;
  tags: Tag[];
}

/** Where a reader gets the chain from. */
export interface ChainSource {
  /** The transaction, or null when the gateway does not know it. */
  tx(id: string): Promise<ChainTx | null>;
  data(id: string): Promise<Buffer>;
  /** Every archive bundle of `owner` (App-Name Relation-IM-Archive), newest first. */
  bundlesOf(owner: string): Promise<ChainTx[]>;
}

const FIELDS = 'id owner { address } tags { name value }';

interface GqlNode { id: string; owner: { address: string }; tags: Tag[] }
interface GqlPage { data?: { transactions?: { pageInfo?: { hasNextPage: boolean }; edges: { cursor: string; node: GqlNode }[] } }; errors?: unknown }

const toTx = (n: GqlNode): ChainTx => ({ id: n.id, owner: n.owner.address, tags: n.tags.map((t) => ({ name: t.name, value: t.value })) });

/** Reads the chain from an Arweave gateway: GraphQL for transactions and tags, `/{id}` for data. */
export class GatewaySource implements ChainSource {
  private readonly base: string;

  constructor(gatewayUrl: string) {
    this.base = gatewayUrl.replace(/\/+$/, '');
  }

  private async graphql(query: string, variables: Record<string, unknown>): Promise<GqlPage> {
    const res = await fetch(`${this.base}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }),
    });
    if (!res.ok) throw new Error(`GraphQL at ${this.base} answered ${res.status}`);
    const page = (await res.json()) as GqlPage;
    if (page.errors) throw new Error(`GraphQL error: ${JSON.stringify(page.errors).slice(0, 300)}`);
    return page;
  }

  async tx(id: string): Promise<ChainTx | null> {
    const page = await this.graphql(`query($ids: [ID!]) { transactions(ids: $ids, first: 1) { edges { cursor node { ${FIELDS} } } } }`, { ids: [id] });
    const node = page.data?.transactions?.edges[0]?.node;
    return node && node.id === id ? toTx(node) : null;
  }

  async data(id: string): Promise<Buffer> {
    const res = await fetch(`${this.base}/${id}`);
    if (!res.ok) throw new Error(`data of ${id}: gateway answered ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }

  async bundlesOf(owner: string): Promise<ChainTx[]> {
    const out: ChainTx[] = [];
    let after: string | null = null;
    for (;;) {
      const page: GqlPage = await this.graphql(`query($owners: [String!], $after: String) {
        transactions(owners: $owners, tags: [{ name: "${TAG.APP_NAME}", values: ["${APP_NAME}"] }], sort: HEIGHT_DESC, first: 100, after: $after) {
          pageInfo { hasNextPage } edges { cursor node { ${FIELDS} } } } }`, { owners: [owner], after });
      const edges = page.data?.transactions?.edges ?? [];
      out.push(...edges.map((e) => toTx(e.node)));
      const last = edges[edges.length - 1];
      if (!page.data?.transactions?.pageInfo?.hasNextPage || !last) return out;
      after = last.cursor;
    }
  }
}
