import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs; secrets never reach them (tokens, signatures, Authorization headers). */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'relation-im-proxy' },
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'signature', '*.signature', 'delegationSig', '*.delegationSig'],
      censor: '[redacted]',
    },
  });
}
