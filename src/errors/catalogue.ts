/**
 * The one error catalogue. Every rejection on every face (REST, JSON WebSocket, MsgPack) carries one of
 * these codes; HTTP statuses and numeric codes derive from this table. `docs/errors.md` is checked
 * against it by a test, so the two cannot drift apart.
 *
 * `num` is the stable numeric form used by binary faces; `temporary` tells a client that retrying the
 * same request later may succeed.
 */
export const ERROR_CATALOGUE = {
  // --- request shape (1xxx)
  BAD_JSON: { num: 1001, http: 400, temporary: false, text: 'The body is not valid JSON.' },
  BODY_TOO_LARGE: { num: 1002, http: 413, temporary: false, text: 'The body or frame exceeds the size limit.' },
  INVALID_FIELD: { num: 1003, http: 400, temporary: false, text: 'A field is missing, of the wrong type or out of range.' },
  UNKNOWN_FIELD: { num: 1004, http: 400, temporary: false, text: 'The object carries a field this server does not know.' },
  UNSUPPORTED_MEDIA_TYPE: { num: 1005, http: 415, temporary: false, text: 'The body must be application/json.' },
  NOT_FOUND: { num: 1006, http: 404, temporary: false, text: 'No such endpoint or resource.' },
  BAD_MSGPACK: { num: 1007, http: 400, temporary: false, text: 'The /im frame is not one well-formed MsgPack value within the limits (text frame, truncated, trailing bytes, too deep, too many elements, extension types).' },
  UNKNOWN_COMMAND: { num: 1008, http: 400, temporary: false, text: 'The /im envelope names a command this server does not offer.' },
  NOT_SUPPORTED: { num: 1009, http: 501, temporary: false, text: 'This server is not configured to offer this (for example friends without a chain reader).' },
  // --- message verification (2xxx)
  ID_MISMATCH: { num: 2001, http: 400, temporary: false, text: 'The message id is not the keccak256 of its fields.' },
  INVALID_SIGNATURE: { num: 2002, http: 401, temporary: false, text: 'A signature is malformed, non-canonical or does not recover to the expected address.' },
  INVALID_DELEGATION: { num: 2003, http: 401, temporary: false, text: 'The delegation message is malformed or its lifetime is not allowed.' },
  DELEGATION_EXPIRED: { num: 2004, http: 401, temporary: false, text: 'The message timestamp lies outside the delegation window.' },
  TIMESTAMP_SKEW: { num: 2005, http: 400, temporary: false, text: 'The message timestamp is too far from the server clock.' },
  ID_CONFLICT: { num: 2006, http: 409, temporary: false, text: 'A different message with this id is already stored.' },
  // --- permissions and relations (3xxx)
  UNAUTHENTICATED: { num: 3001, http: 401, temporary: false, text: 'A valid bearer token is required.' },
  TOKEN_EXPIRED: { num: 3002, http: 401, temporary: false, text: 'The token has expired or was revoked.' },
  FORBIDDEN: { num: 3003, http: 403, temporary: false, text: 'The caller may not read or change this resource.' },
  NAME_REQUIRED: { num: 3004, http: 403, temporary: false, text: 'The sender holds no Relation Name Service name.' },
  NOT_MEMBER: { num: 3005, http: 403, temporary: false, text: 'The sender is not a member of the group.' },
  NOT_OWNER: { num: 3006, http: 403, temporary: false, text: 'Only the owner of the group may do this.' },
  NOT_A_GROUP: { num: 3007, http: 400, temporary: false, text: 'The receiver is not a DAO contract.' },
  // NOT_MEMBER, NOT_OWNER, NOT_A_GROUP and RELATIONS_UNAVAILABLE are answered once group chats are served.
  GROUPS_UNAVAILABLE: { num: 3008, http: 501, temporary: false, text: 'Group messages need a relation reader (chain) that is not configured.' },
  SIWE_INVALID: { num: 3009, http: 401, temporary: false, text: 'The Sign-In with Ethereum message is malformed, for another domain, expired or not yet valid.' },
  NONCE_INVALID: { num: 3010, http: 401, temporary: false, text: 'The sign-in nonce is unknown, expired or already used.' },
  MESSAGE_NOT_FOUND: { num: 3011, http: 404, temporary: false, text: 'No message with this id is visible to the caller.' },
  INVALID_TARGET: { num: 3012, http: 400, temporary: false, text: 'The message this one refers to does not exist in the same chat.' },
  REVOKE_WINDOW_PASSED: { num: 3013, http: 403, temporary: false, text: 'The message is older than the revoke window for one\'s own messages.' },
  FILE_NOT_FOUND: { num: 3014, http: 400, temporary: false, text: 'The file was never uploaded, or its stored size differs from the stated size.' },
  BAD_SIGNATURE_URL: { num: 3015, http: 403, temporary: false, text: 'The file URL signature is invalid or has expired.' },
  // --- load and availability (4xxx)
  OVERLOADED: { num: 4002, http: 503, temporary: true, text: 'Too many sends are being processed; retry with backoff.' },
  RELATIONS_UNAVAILABLE: { num: 4003, http: 503, temporary: true, text: 'The chain could not be read in time and no fresh cached view exists.' },
  SHUTTING_DOWN: { num: 4004, http: 503, temporary: true, text: 'The server is shutting down.' },
  STORE_UNAVAILABLE: { num: 4100, http: 503, temporary: true, text: 'The database cannot be reached; the request was not acknowledged. Retry with backoff (a Relation ONE message id is stored at most once).' },
  INTERNAL: { num: 4999, http: 500, temporary: true, text: 'Unexpected server error.' },
} as const satisfies Record<string, { num: number; http: number; temporary: boolean; text: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, value);
}

/**
 * WebSocket close codes (4xxx, private range). `reconnect` tells the client whether reconnecting
 * (with backoff) is sensible.
 */
export const CLOSE_CODES = {
  NORMAL: { code: 1000, reconnect: false, text: 'Closed by the client or after logout.' },
  GOING_AWAY: { code: 1001, reconnect: true, text: 'The server is shutting down.' },
  UNAUTHENTICATED: { code: 4001, reconnect: false, text: 'No valid token within the auth timeout (/ws and /im), or a /im request other than auth/ping before auth.' },
  TOKEN_EXPIRED: { code: 4002, reconnect: false, text: 'The token expired or was revoked; log in again.' },
  BAD_FRAME: { code: 4003, reconnect: true, text: 'A binary frame on the JSON face /ws. (The MsgPack face /im answers a text frame with BAD_MSGPACK and keeps the connection.)' },
  FRAME_TOO_LARGE: { code: 1009, reconnect: true, text: 'A frame exceeded MAX_BODY_BYTES (sent by the ws library itself).' },
  SLOW_CONSUMER: { code: 4008, reconnect: true, text: 'Too many bytes queued for this connection; reconnect and resume with afterSeq.' },
  HEARTBEAT_TIMEOUT: { code: 4009, reconnect: true, text: 'No pong within the heartbeat interval.' },
  RATE_LIMITED: { code: 4029, reconnect: true, text: 'Too many frames per second.' },
} as const;

export type CloseName = keyof typeof CLOSE_CODES;
