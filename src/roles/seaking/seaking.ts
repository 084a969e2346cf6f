import { AppError } from '../../errors/app-error.js';
import type { AuthService, Session } from '../auth/auth-service.js';
import { dmParticipants } from '../chat/ids.js';
import { groupAudience } from '../chat/membership.js';
import { isAddress } from '../../protocol/message.js';
import type { PushBus } from '../../bus/hub.js';
import type { GroupInfo, RelationReader } from '../relations/port.js';
import type { Store } from '../../store/port.js';
import type { AccessEvents } from '../access/events.js';

/** Roles as the MsgPack face numbers them (the owner from the chain, admins from the server's records). */
export const Role = { NONE: 0, MEMBER: 1, ADMIN: 2, OWNER: 3 } as const;
export type RoleId = (typeof Role)[keyof typeof Role];

/** What a user may do in a conversation, as SeaKing decides it. */
export type Access =
  | { kind: 'dm'; cid: string; peer: string; participants: readonly [string, string] }
  | { kind: 'group'; cid: string; group: GroupInfo; role: RoleId };

/**
 * The SeaKing role (seed section 9): identity, relations, roles and presence; the source of truth for
 * who may read and write where. It never pushes and never stores messages. Admins are the same records
 * the REST face's SocialService keeps (`Store.setAdmin`), so both faces agree on roles.
 */
export class SeaKing {
  constructor(
    private readonly auth: AuthService,
    private readonly relations: RelationReader,
    private readonly store: Store,
    private readonly presenceOf: Pick<PushBus, 'isOnline'>,
    /** Told of every role change made here, so every face's cached decisions drop it. */
    private readonly changes?: AccessEvents,
  ) {}

  authenticate(token: string | undefined): Promise<Session> {
    return this.auth.authenticate(token);
  }

  /** Checks that `user` takes part in `cid` and returns how; throws FORBIDDEN, NOT_MEMBER, GROUPS_UNAVAILABLE. */
  async access(user: string, cid: string): Promise<Access> {
    if (cid.startsWith('dm:')) {
      const p = dmParticipants(cid);
      if (!p || p[0] > p[1]) throw new AppError('INVALID_FIELD', 'a direct chat cid is dm:<lower address>:<higher address>, lowercase and sorted', { field: 'cid' });
      if (p[0] !== user && p[1] !== user) throw new AppError('FORBIDDEN', 'not a participant of this chat');
      return { kind: 'dm', cid, peer: p[0] === user ? p[1] : p[0], participants: p };
    }
    if (!/^0x[0-9a-f]{40}$/.test(cid)) throw new AppError('INVALID_FIELD', 'cid is a lowercase DAO address or a dm: id', { field: 'cid' });
    const group = await this.group(cid);
    const role = await this.roleOf(group, user);
    if (role === Role.NONE) throw new AppError('NOT_MEMBER');
    return { kind: 'group', cid, group, role };
  }

  private async group(cid: string): Promise<GroupInfo> {
    if (!this.relations.available) throw new AppError('GROUPS_UNAVAILABLE');
    const group = await this.relations.group(cid);
    if (!group) throw new AppError('NOT_A_GROUP');
    return group;
  }

  private async roleOf(group: GroupInfo, user: string): Promise<RoleId> {
    if (group.owner === user) return Role.OWNER;
    if (!(await this.relations.isMember(group.address, user))) return Role.NONE;
    return (await this.store.listAdmins(group.address)).includes(user) ? Role.ADMIN : Role.MEMBER;
  }

  /** Everyone a group event is pushed to: the token holders and the owner. */
  audience(cid: string): Promise<string[]> {
    return groupAudience(this.relations, cid);
  }

  /** The owner (from the chain) and the admins (the server's own record). */
  async roles(user: string, cid: string): Promise<{ owner: string; admins: string[] }> {
    const a = await this.access(user, cid);
    if (a.kind !== 'group') throw new AppError('NOT_A_GROUP');
    return { owner: a.group.owner, admins: await this.store.listAdmins(cid) };
  }

  /** Only the group's owner sets roles; the target must be a member; ADMIN or MEMBER. */
  async setRole(actor: string, cid: string, target: string, role: RoleId): Promise<RoleId> {
    const a = await this.access(actor, cid);
    if (a.kind !== 'group') throw new AppError('NOT_A_GROUP');
    if (a.role !== Role.OWNER) throw new AppError('NOT_OWNER');
    if (role !== Role.ADMIN && role !== Role.MEMBER) throw new AppError('INVALID_FIELD', 'role is 1 (member) or 2 (admin)', { field: 'body.2' });
    if (target === a.group.owner) throw new AppError('INVALID_FIELD', 'the owner\'s role comes from the chain', { field: 'body.1' });
    if (!(await this.relations.isMember(cid, target))) throw new AppError('NOT_MEMBER', 'the target is not a member of the group');
    await this.store.setAdmin(cid, target, role === Role.ADMIN);
    this.changes?.changed(cid, target);
    return role;
  }

  /** Members (token holders and the owner) with their roles. */
  async members(user: string, cid: string): Promise<[string, RoleId][]> {
    const { owner, admins } = await this.roles(user, cid);
    const adminSet = new Set(admins);
    return (await this.audience(cid)).map((m) => [m, m === owner ? Role.OWNER : adminSet.has(m) ? Role.ADMIN : Role.MEMBER]);
  }

  /** Mutual follows (SPEC section 7); NOT_SUPPORTED without a chain. */
  async friends(user: string): Promise<string[]> {
    if (!this.relations.available) throw new AppError('NOT_SUPPORTED', 'friends need a chain reader');
    return this.relations.friends(user);
  }

  /** Groups by address (or, without addresses, the groups the user has a chat entry for), with the user's role. */
  async groups(user: string, addresses: readonly string[] | undefined): Promise<{ group: GroupInfo; role: RoleId }[]> {
    if (!this.relations.available) throw new AppError('GROUPS_UNAVAILABLE');
    const list = addresses ?? (await this.store.listChats(user, 1000, 0)).filter((c) => c.peer === null && isAddress(c.cid)).map((c) => c.cid);
    const out: { group: GroupInfo; role: RoleId }[] = [];
    for (const address of list) {
      const group = await this.relations.group(address.toLowerCase());
      if (group) out.push({ group, role: await this.roleOf(group, user) });
    }
    return out;
  }

  presence(users: readonly string[]): boolean[] {
    return users.map((u) => this.presenceOf.isOnline(u));
  }
}
