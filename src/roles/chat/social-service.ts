import { AppError } from '../../errors/app-error.js';
import type { GroupInfo, RelationReader } from '../relations/port.js';
import type { Store } from '../../store/port.js';
import type { AccessEvents } from '../access/events.js';
import { belongsTo, groupAudience } from './membership.js';

export type Role = 'owner' | 'admin' | 'member';

export interface Person {
  address: string;
  name: string;
  avatar: string;
}

export interface MemberView extends Person {
  role: Role;
}

/** Friends, follows, groups and roles (the SeaKing side): chain facts plus the server's own admin records. */
export class SocialService {
  constructor(private readonly store: Store, private readonly relations: RelationReader, private readonly access?: AccessEvents) {}

  private async people(addresses: readonly string[]): Promise<Person[]> {
    return Promise.all(addresses.map(async (address) => ({ address, ...(await this.relations.profile(address)) })));
  }

  private async groupOrThrow(address: string): Promise<GroupInfo> {
    if (!this.relations.available) throw new AppError('GROUPS_UNAVAILABLE');
    const g = await this.relations.group(address);
    if (!g) throw new AppError('NOT_A_GROUP');
    return g;
  }

  async profile(address: string): Promise<Person & { hasName: boolean }> {
    const [p, hasName] = await Promise.all([this.relations.profile(address), this.relations.hasName(address)]);
    return { address, ...p, hasName };
  }

  friends(address: string): Promise<Person[]> {
    return this.relations.friends(address).then((a) => this.people(a));
  }

  following(address: string): Promise<Person[]> {
    return this.relations.following(address).then((a) => this.people(a));
  }

  followers(address: string): Promise<Person[]> {
    return this.relations.followers(address).then((a) => this.people(a));
  }

  async group(address: string): Promise<GroupInfo & { admins: string[] }> {
    const g = await this.groupOrThrow(address);
    return { ...g, admins: await this.store.listAdmins(g.address) };
  }

  /** The role of `user` in a group: owner from `ownerOfDao()`, admin from the server's records (members only). */
  async roleOf(address: string, user: string): Promise<Role | null> {
    const g = await this.groupOrThrow(address);
    if (g.owner === user) return 'owner';
    if (!(await this.relations.isMember(g.address, user))) return null;
    return (await this.store.listAdmins(g.address)).includes(user) ? 'admin' : 'member';
  }

  /** Members with their roles; the owner is listed even when not holding a member token. */
  async members(address: string, viewer: string): Promise<MemberView[]> {
    const g = await this.groupOrThrow(address);
    if (!(await belongsTo(this.relations, g.address, viewer))) throw new AppError('NOT_MEMBER');
    const [all, admins] = await Promise.all([groupAudience(this.relations, g.address), this.store.listAdmins(g.address)]);
    const adminSet = new Set(admins);
    const people = await this.people(all);
    return people.map((p) => ({ ...p, role: p.address === g.owner ? 'owner' : adminSet.has(p.address) ? 'admin' : 'member' }));
  }

  /** Grants or withdraws the admin role; only the group's owner may, and only for members. */
  async setAdmin(address: string, caller: string, user: string, admin: boolean): Promise<void> {
    const g = await this.groupOrThrow(address);
    if (g.owner !== caller) throw new AppError('NOT_OWNER');
    if (admin && !(await this.relations.isMember(g.address, user))) throw new AppError('NOT_MEMBER', 'only members can be admins');
    await this.store.setAdmin(g.address, user, admin);
    this.access?.changed(g.address, user);
  }
}
