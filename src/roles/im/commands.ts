/**
 * Command numbers of the MsgPack face (envelope key 1). A request's answer carries the same command
 * number and the request's seq; an error answer carries cmd 0. PUSH, READ_PUSH and PRESENCE_PUSH are
 * server-initiated and have no seq; sent as requests they are UNKNOWN_COMMAND.
 * Published with their bodies in docs/protocol-im.md.
 */
export const Cmd = {
  ERROR: 0,
  AUTH: 1,
  PING: 2,
  SEND: 3,
  PUSH: 4,
  ACK: 5,
  RESUME: 6,
  QUERY: 7,
  PRESENCE: 8,
  PRESIGN: 9,
  FRIENDS: 10,
  GROUPS: 11,
  MEMBERS: 12,
  ROLES: 13,
  SET_ROLE: 14,
  /** Server -> client, no seq: the user's read marker moved on another device (either face). */
  READ_PUSH: 15,
  /** Server -> client, no seq: a watched user came online or went offline (PRESENCE with watch). */
  PRESENCE_PUSH: 16,
} as const;
export type CmdId = (typeof Cmd)[keyof typeof Cmd];

/** Commands a connection may use before it authenticated. */
export const BEFORE_AUTH: ReadonlySet<number> = new Set([Cmd.AUTH, Cmd.PING]);
