import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { RawData, WebSocket } from 'ws';
import { LiveSocket } from '../../../src/gateway/ws/live-socket.js';
import { preparedFrame } from '../../../src/gateway/ws/prepared.js';

/** Just enough of a ws connection for LiveSocket's push logic: records what is sent. */
class FakeWs extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: string[] = [];
  send(data: string | Buffer, _opts: unknown, cb?: () => void): void {
    this.sent.push(data.toString());
    cb?.();
  }
  close(): void {
    this.readyState = 3;
  }
  terminate(): void {
    this.readyState = 3;
  }
  ping(): void {}
}

class TestSocket extends LiveSocket {
  protected onFrame(_data: RawData, _isBinary: boolean): void {}
  protected unregister(): void {}
  hold(): void {
    this.holdPushes();
  }
  release(replayed: Map<string, number>): void {
    this.releasePushes(replayed);
  }
  live(text: string, cid?: string, seq?: number): void {
    this.push(text, cid, seq);
  }
  prepared(text: string, cid?: string, seq?: number, written?: () => () => void): void {
    const payload = Buffer.from(text);
    this.pushPrepared(payload, preparedFrame(payload, false), cid, seq, written, true);
  }
}

describe('LiveSocket pushes around a resume', () => {
  it('never sends a push its resume already replayed, held or arriving after the replay', () => {
    const ws = new FakeWs();
    const s = new TestSocket(ws as unknown as WebSocket, { authTimeoutMs: 60_000, maxFramesPerSec: 100, maxBufferedBytes: 1 << 20 }, false, 'c1');
    try {
      s.hold();
      s.live('held-5', 'chat', 5);
      s.live('held-8', 'chat', 8);
      s.release(new Map([['chat', 6]]));
      // A chunk of a large fan-out published before the replay read the store, delivered after it.
      s.prepared('late-6', 'chat', 6);
      s.prepared('late-7', 'chat', 7);
      s.live('other-1', 'other', 1);
      expect(ws.sent).toEqual(['held-8', 'late-7', 'other-1']);
    } finally {
      s.close('GOING_AWAY');
    }
  });

  it('sends a prepared push as its payload when it cannot write the prepared bytes, and calls the write callback', () => {
    const ws = new FakeWs();
    const s = new TestSocket(ws as unknown as WebSocket, { authTimeoutMs: 60_000, maxFramesPerSec: 100, maxBufferedBytes: 1 << 20 }, false, 'c2');
    let taken = 0;
    let done = 0;
    try {
      s.prepared('{"type":"message"}', 'g', 1, () => { taken++; return () => { done++; }; });
      expect(ws.sent).toEqual(['{"type":"message"}']);
      expect([taken, done]).toEqual([1, 1]);
    } finally {
      s.close('GOING_AWAY');
    }
  });

  it('frames a prepared push exactly as ws frames a message (FIN, opcode, length)', () => {
    expect([...preparedFrame(Buffer.from('hi'), false)]).toEqual([0x81, 2, 0x68, 0x69]);
    const big = preparedFrame(Buffer.alloc(300, 1), true);
    expect([...big.subarray(0, 4)]).toEqual([0x82, 126, 1, 44]);
    expect(big.length).toBe(304);
  });
});
