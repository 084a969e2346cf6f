import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs; secrets never reach them (tokens, signatures, Authorization headers). */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'relation-im-proxy' },
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'signature', '*.signature', 'delegationSig', '*.delegationSig'],
      censor: '[redacted]',
    },
  };
  // A destination other than stdout: tests that read what the server logs (e.g. scanning it for plaintext).
  return destination ? pino(options, destination) : pino(options);
}
