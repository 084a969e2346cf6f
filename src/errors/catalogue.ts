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
  BAD_REQUEST: { num: 1200, http: 400, temporary: false, text: 'The request cannot be read: malformed HTTP, malformed percent-encoding in the path, or an unreadable request line.' },
  REQUEST_TIMEOUT: { num: 1201, http: 408, temporary: false, text: 'The request headers or body did not arrive within HTTP_HEADERS_TIMEOUT_MS / HTTP_REQUEST_TIMEOUT_MS.' },
  HEADERS_TOO_LARGE: { num: 1202, http: 431, temporary: false, text: 'The request headers exceed the server\'s limit.' },
  // --- message verification (2xxx)
  ID_MISMATCH: { num: 2001, http: 400, temporary: false, text: 'The message id is not the keccak256 of its fields.' },
  INVALID_SIGNATURE: { num: 2002, http: 401, temporary: false, text: 'A signature is malformed, non-canonical or does not recover to the expected address.' },
  INVALID_DELEGATION: { num: 2003, http: 401, temporary: false, text: 'The delegation message is malformed or its lifetime is not allowed.' },
  DELEGATION_EXPIRED: { num: 2004, http: 401, temporary: false, text: 'The message timestamp lies outside the delegation window.' },
  TIMESTAMP_SKEW: { num: 2005, http: 400, temporary: false, text: 'The message timestamp is too far from the server clock.' },
  ID_CONFLICT: { num: 2006, http: 409, temporary: false, text: 'A different message with this id is already stored.' },
  // --- end-to-end encryption: the MLS Delivery Service (docs/e2ee.md) (21xx)
  MLS_MALFORMED: { num: 2101, http: 400, temporary: false, text: 'The payload of an MLS message (encryptedBy "MLS") is not standard base64 of one well-formed MLSMessage (public or private; after a commit at most one Welcome), or a KeyPackage is not one well-formed MLSMessage in its canonical encoding (minimal vector lengths).' },
  MLS_WRONG_GROUP: { num: 2102, http: 400, temporary: false, text: 'The MLS group id is not the conversation the message is sent to.' },
  MLS_STALE_EPOCH: { num: 2103, http: 409, temporary: false, text: 'The handshake message (or GroupInfo) is not at the group\'s current epoch (`details.currentEpoch`); another commit won. Process it, rebuild and retry.' },
  MLS_FUTURE_EPOCH: { num: 2104, http: 409, temporary: false, text: 'The application message is at an epoch ahead of the group\'s current epoch (`details.currentEpoch`).' },
  MLS_COMMIT_REQUIRED: { num: 2105, http: 409, temporary: false, text: 'The proxy proposed a removal at this epoch that no member has committed yet: commit it, then send at the new epoch (`details.currentEpoch`).' },
  MLS_REPLAY: { num: 2106, http: 409, temporary: false, text: 'The same MLS bytes were stored in this conversation before (under another message id).' },
  PLAINTEXT_REFUSED: { num: 2107, http: 403, temporary: false, text: 'Development plaintext (encryptedBy "dev-plaintext-NOT-end-to-end-encrypted") is refused: this server does not set ALLOW_DEV_PLAINTEXT.' },
  MLS_INVALID_KEY_PACKAGE: { num: 2108, http: 400, temporary: false, text: 'A KeyPackage is not usable: not wire format mls_key_package, not a basic credential, another signature key than the call\'s others, its identity is not the credential JSON of docs/e2ee.md section 2, its KeyPackage signature or its leaf node signature does not verify with the leaf\'s signature key (RFC 9420 sections 10.1, 7.3; the message says which), its init key equals its encryption key, or its leaf node\'s lifetime (RFC 9420 section 7.2) is not usable now: notBefore more than 5 minutes ahead, notAfter past or 1 hour or less away, or more than 90 days in all (the message says which).' },
  MLS_CREDENTIAL_MISMATCH: { num: 2109, http: 403, temporary: false, text: 'The MLS credential does not bind the caller\'s wallet: another wallet, a delegation or key signature that does not recover, or a delegation outside its window (`details.reason`).' },
  MLS_TOO_MANY_DEVICES: { num: 2110, http: 409, temporary: false, text: 'The wallet has MLS_MAX_DEVICES devices in the directory already; remove one first.' },
  MLS_UNSUPPORTED_SUITE: { num: 2111, http: 400, temporary: false, text: 'The KeyPackage\'s cipher suite is neither 0xF00D (X-Wing) nor 0x0001.' },
  MLS_NO_KEY_PACKAGE: { num: 2112, http: 404, temporary: false, text: 'None of the requested wallets has a device with a KeyPackage in the directory (or the device named does not exist).' },
  // --- permissions and relations (3xxx)
  UNAUTHENTICATED: { num: 3001, http: 401, temporary: false, text: 'A valid bearer token is required.' },
  TOKEN_EXPIRED: { num: 3002, http: 401, temporary: false, text: 'The token has expired or was revoked.' },
  FORBIDDEN: { num: 3003, http: 403, temporary: false, text: 'The caller may not read or change this resource.' },
  NAME_REQUIRED: { num: 3004, http: 403, temporary: false, text: 'The sender holds no Relation Name Service name.' },
  NOT_MEMBER: { num: 3005, http: 403, temporary: false, text: 'The caller is neither a member nor the owner of the group (sending to it, reading it, or made an admin).' },
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
  ORIGIN_NOT_ALLOWED: { num: 3200, http: 403, temporary: false, text: 'The request\'s Origin is neither this server nor in CORS_ORIGINS (REST and the WebSocket upgrade).' },
  BANNED: { num: 3201, http: 403, temporary: false, text: 'The operator banned this address: it can neither sign in nor send.' },
  // --- load and availability (4xxx)
  OVERLOADED: { num: 4002, http: 503, temporary: true, text: 'Too many sends are being processed; retry with backoff.' },
  RELATIONS_UNAVAILABLE: { num: 4003, http: 503, temporary: true, text: 'The chain could not be read in time and no fresh cached view exists.' },
  SHUTTING_DOWN: { num: 4004, http: 503, temporary: true, text: 'The server is shutting down.' },
  STORE_UNAVAILABLE: { num: 4100, http: 503, temporary: true, text: 'The database cannot be reached; the request was not acknowledged. Retry with backoff (a Relation ONE message id is stored at most once).' },
  RATE_LIMITED: { num: 4200, http: 429, temporary: true, text: 'Too many requests from this client address or user; retry after `Retry-After` seconds (REST) or `retryAfterMs` (WebSocket error frames).' },
  TOO_MANY_CONNECTIONS: { num: 4201, http: 429, temporary: true, text: 'Too many unauthenticated connections from this client address (MAX_UNAUTH_CONNECTIONS_PER_ADDRESS).' },
  INTERNAL: { num: 4999, http: 500, temporary: true, text: 'Unexpected server error.' },
} as const satisfies Record<string, { num: number; http: number; temporary: boolean; text: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, value);
}

/**
 * Every close code a client of `/ws` or `/im` can see, with whether reconnecting (with backoff) is
 * sensible. The 4xxx codes are this server's (private range); 1002, 1007 and 1009 are sent by the `ws`
 * library on a frame it refuses; 1005 and 1006 are never sent by anyone: they are what a client's
 * library reports when a close frame carried no code, or when no close frame arrived at all.
 */
export const CLOSE_CODES = {
  NORMAL: { code: 1000, reconnect: false, text: 'Closed by the client or after logout.' },
  GOING_AWAY: { code: 1001, reconnect: true, text: 'The server is shutting down.' },
  PROTOCOL_ERROR: { code: 1002, reconnect: true, text: 'A frame broke the WebSocket protocol (unmasked client frame, reserved bits, unknown opcode, fragmented control frame); sent by the ws library.' },
  NO_STATUS: { code: 1005, reconnect: true, text: 'Never sent: the client closed without a code and the echo carries none.' },
  ABNORMAL: { code: 1006, reconnect: true, text: 'Never sent: the TCP connection ended without a close frame (server killed, network cut, a peer that did not answer a close in time, a slow consumer that did not read within WS_SLOW_CONSUMER_GRACE_MS, or a refused upgrade: HTTP 403/429, see the catalogue). Reconnect and resume.' },
  INVALID_PAYLOAD: { code: 1007, reconnect: true, text: 'A text frame (or close reason) that is not valid UTF-8, on either face; sent by the ws library.' },
  FRAME_TOO_LARGE: { code: 1009, reconnect: true, text: 'A frame exceeded MAX_BODY_BYTES (/ws) or IM_MAX_FRAME_BYTES (/im); sent by the ws library.' },
  UNAUTHENTICATED: { code: 4001, reconnect: false, text: 'No valid token within the auth timeout (/ws and /im), or a /im request other than auth/ping before auth.' },
  TOKEN_EXPIRED: { code: 4002, reconnect: false, text: 'The token expired or was revoked; log in again.' },
  BAD_FRAME: { code: 4003, reconnect: true, text: 'A binary frame on the JSON face /ws. (The MsgPack face /im answers a text frame with BAD_MSGPACK and keeps the connection.)' },
  SLOW_CONSUMER: { code: 4008, reconnect: true, text: 'More than WS_MAX_BUFFERED_BYTES queued for this connection: nothing more is queued, and this close follows what was; a client that reads again within WS_SLOW_CONSUMER_GRACE_MS gets it (later TCP is dropped: 4008 or 1006). Reconnect and resume.' },
  HEARTBEAT_TIMEOUT: { code: 4009, reconnect: true, text: 'No pong within the heartbeat interval.' },
  RATE_LIMITED: { code: 4029, reconnect: true, text: 'More than WS_MAX_FRAMES_PER_SEC frames in a second.' },
  BANNED: { code: 4203, reconnect: false, text: 'The operator banned this address (open connections close when the ban is made).' },
} as const;

export type CloseName = keyof typeof CLOSE_CODES;
