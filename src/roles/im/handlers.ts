import { randomBytes } from 'node:crypto';
import { AppError, toAppError } from '../../errors/app-error.js';
import type { ObjectStore } from '../../files/port.js';
import { mp, optArr, optInt, optStr, reqInt, reqStr, type MpMap, type MpValue } from '../../protocol/msgpack/codec.js';
import type { RoleId, SeaKing } from '../seaking/seaking.js';
import { Cmd } from './commands.js';
import type { SendMeter } from '../../metrics/metrics.js';
import { parseDraft, type ImWire } from './events.js';
import type { ImService } from './im-service.js';

const CID = /^(0x[0-9a-f]{40}|dm:0x[0-9a-f]{40}:0x[0-9a-f]{40})$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

export interface HandlerOptions {
  maxTextBytes: number;
  filesMaxBytes: number;
  listMaxLimit: number;
  maxPresence: number;
  /** Counts SEND (cmd 3) accepted and refused (metrics). */
  sends?: SendMeter;
}

/** The connection as command handlers see it. */
export interface ImSession {
  readonly user: string;
  /** Starts (true) or stops (false) presence pushes about these users to this connection. */
  watchPresence?(users: readonly string[], on: boolean): void;
}

/**
 * Commands of the MsgPack face after authentication, as plain functions from a validated body to a result
 * body: no socket here (the gateway adds framing, auth, limits, resume and pushes).
 */
export class ImHandlers {
  constructor(
    private readonly im: ImService,
    private readonly seaking: SeaKing,
    private readonly files: ObjectStore,
    private readonly wire: ImWire,
    private readonly opts: HandlerOptions,
  ) {}

  private async cid(s: ImSession, body: MpMap): Promise<string> {
    const cid = reqStr(body, 0, 'body', 100, CID);
    return cid;
  }

  async run(cmd: number, s: ImSession, body: MpMap): Promise<MpMap> {
    switch (cmd) {
      case Cmd.PING:
        return mp({ 0: Date.now() });
      case Cmd.SEND: {
        let r;
        try {
          const d = parseDraft(body, { maxTextBytes: this.opts.maxTextBytes, maxFileBytes: this.opts.filesMaxBytes });
          r = await this.im.send(s.user, d);
        } catch (e) {
          this.opts.sends?.refused(toAppError(e).code);
          throw e;
        }
        this.opts.sends?.accepted();
        const out = new Map<MpValue, MpValue>([[0, r.mid], [1, r.t], [2, r.cid]]);
        if (r.resent) out.set(3, true);
        return out;
      }
      case Cmd.ACK: {
        const cid = await this.cid(s, body);
        const mid = reqInt(body, 1, 'body', 0, Number.MAX_SAFE_INTEGER);
        const read = await this.im.ack(s.user, cid, mid, s);
        return mp({ 0: cid, 1: read });
      }
      case Cmd.QUERY: {
        const cid = await this.cid(s, body);
        const limit = optInt(body, 5, 'body', 1, this.opts.listMaxLimit) ?? 50;
        const q = {
          cid, limit: limit + 1, desc: body.get(6) === true,
          fromSeq: optInt(body, 1, 'body', 0, Number.MAX_SAFE_INTEGER),
          toSeq: optInt(body, 2, 'body', 0, Number.MAX_SAFE_INTEGER),
          since: secondsToMs(optInt(body, 3, 'body', 0, 1e11)),
          until: secondsToMs(optInt(body, 4, 'body', 0, 1e11), 999),
        };
        const events = await this.im.query(s.user, q);
        const page = events.slice(0, limit);
        return mp({ 0: await Promise.all(page.map((e) => this.wire.encode(e))), 1: events.length > limit });
      }
      case Cmd.PRESENCE: {
        const users = (optArr(body, 0, 'body', this.opts.maxPresence) ?? []).map((u, i) => {
          if (typeof u !== 'string' || !ADDRESS.test(u)) throw new AppError('INVALID_FIELD', `body.0[${i}] must be an address`, { field: 'body.0' });
          return u.toLowerCase();
        });
        const watch = body.get(1);
        if (watch !== undefined && typeof watch !== 'boolean') throw new AppError('INVALID_FIELD', 'body.1 (watch) must be a boolean', { field: 'body.1' });
        if (watch !== undefined) {
          if (!s.watchPresence) throw new AppError('NOT_SUPPORTED', 'presence pushes need a connection');
          // Watch first, then read: a change right after the answer is pushed, none falls in between.
          s.watchPresence(users, watch);
        }
        const online = this.seaking.presence(users);
        return mp({ 0: users.map((u, i) => [u, online[i] === true]) });
      }
      case Cmd.PRESIGN: {
        const name = reqStr(body, 0, 'body', 255);
        const size = reqInt(body, 1, 'body', 0, this.opts.filesMaxBytes);
        const mime = optStr(body, 2, 'body', 127, /^[\w.+-]+\/[\w.+-]+$/) ?? 'application/octet-stream';
        const fid = randomBytes(16).toString('hex');
        const up = await this.files.presignUpload(fid, size, mime);
        const headers: MpMap = new Map(Object.entries(up.headers));
        return mp({ 0: fid, 1: up.url, 2: up.method, 3: headers, 4: up.expiresAt, 5: name });
      }
      case Cmd.FRIENDS:
        return mp({ 0: await this.seaking.friends(s.user) });
      case Cmd.GROUPS: {
        const list = optArr(body, 0, 'body', 200)?.map((a, i) => {
          if (typeof a !== 'string' || !ADDRESS.test(a)) throw new AppError('INVALID_FIELD', `body.0[${i}] must be an address`, { field: 'body.0' });
          return a.toLowerCase();
        });
        const groups = await this.seaking.groups(s.user, list);
        return mp({ 0: groups.map(({ group, role }) => mp({ 0: group.address, 1: group.name, 2: group.avatar, 3: group.owner, 4: role })) });
      }
      case Cmd.MEMBERS: {
        const cid = await this.cid(s, body);
        const members = await this.seaking.members(s.user, cid);
        return mp({ 0: members.map(([u, role]) => [u, role] as MpValue[]), 1: true });
      }
      case Cmd.ROLES: {
        const cid = await this.cid(s, body);
        const r = await this.seaking.roles(s.user, cid);
        return mp({ 0: r.owner, 1: r.admins });
      }
      case Cmd.SET_ROLE: {
        const cid = await this.cid(s, body);
        const target = reqStr(body, 1, 'body', 42, ADDRESS).toLowerCase();
        const role = reqInt(body, 2, 'body', 0, 3) as RoleId;
        // SeaKing announces the change on AccessEvents: every face's cached decisions drop it.
        const now = await this.seaking.setRole(s.user, cid, target, role);
        return mp({ 0: cid, 1: target, 2: now });
      }
      default:
        throw new AppError('UNKNOWN_COMMAND', `command ${cmd} is not offered`);
    }
  }
}

function secondsToMs(s: number | undefined, plus = 0): number | undefined {
  return s === undefined ? undefined : s * 1000 + plus;
}
