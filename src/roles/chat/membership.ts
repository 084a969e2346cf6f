import type { RelationReader } from '../relations/port.js';

/**
 * Who belongs to a group chat: the holders of the DAO's member tokens, and its owner (`ownerOfDao()`),
 * who posts announcements and reads the group whether or not they hold a token.
 */
export async function belongsTo(relations: RelationReader, group: string, user: string): Promise<boolean> {
  if (!relations.available) return false;
  const g = await relations.group(group);
  if (!g) return false;
  return g.owner === user || (await relations.isMember(group, user));
}

/** Everyone a group message is pushed to: the members and the owner. */
export async function groupAudience(relations: RelationReader, group: string): Promise<string[]> {
  const [g, members] = await Promise.all([relations.group(group), relations.members(group)]);
  return g && !members.includes(g.owner) ? [...members, g.owner] : members;
}
