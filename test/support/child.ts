/** Child processes running test/support/archive-child.ts, with their output as lines, for kill -9 tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'archive-child.ts');

/** Every child started; a test file's afterAll kills the ones still running. */
export const children: ChildProcess[] = [];

export interface Child {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the first line matching `re`; rejects if the process ends first. */
  waitFor(re: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

export function run(env: Record<string, string>): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`child exited (${code}) before ${w.re}: ${lines.slice(-5).join(' | ')} ${stderr.slice(-500)}`));
    resolve(code);
  }));
  return {
    proc, lines, exited,
    waitFor: (re) => {
      const hit = lines.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => waiters.push({ re, resolve, reject }));
    },
  };
}

export async function kill9(c: Child): Promise<void> {
  c.proc.kill('SIGKILL');
  await c.exited;
}

