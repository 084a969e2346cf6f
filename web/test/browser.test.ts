import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config/config.js';
import { startChainRelations, type StartedRelations } from '../../src/roles/relations/chain/setup.js';
import { startServer, type TestServer } from '../../test/support/server.js';
import { RelationClient } from '../../sdk/src/client.js';
import { privateKeySigner } from '../../sdk/src/signer.js';
import { CHROMIUM, FLAGS, personContext, type Person } from './browser-support.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.resolve(here, '../../test-artifacts');

describe('web client in Chromium (alice and bob)', () => {
  let chain: StartedRelations;
  let srv: TestServer;
  let browser: Browser;
  let profile: string;
  let alice: Person;
  let bob: Person;
  let dao: string;
  const shot = (p: Page, name: string) => p.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const webDir = mkdtempSync(path.join(tmpdir(), 'rim-web-'));
    await build({ configFile: path.resolve(here, '../vite.config.ts'), logLevel: 'error', build: { outDir: webDir, emptyOutDir: true } });
    chain = await startChainRelations(testConfig({ chain: 'embedded' }));
    const demo = chain.demo!;
    srv = await startServer({ chain: 'embedded', requireName: true }, { relations: chain.reader, demo, webDir });
    alice = demo.identities.find((i) => i.label === 'alice')!;
    bob = demo.identities.find((i) => i.label === 'bob')!;
    dao = demo.dao.address;
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    profile = mkdtempSync(path.join(tmpdir(), 'rim-chromium-'));
    // Playwright refuses --user-data-dir in launch() args and gives every launch its own new empty profile
    // directory; the temp dir here is for Chromium's other state (crash dumps, caches) and is removed after.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await srv?.close();
    await chain?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('signs in, sends, receives, unread badge, mark read, reply, group and announcement, and resumes after a dropped socket', async () => {
    const A = await personContext(browser, alice);
    const B = await personContext(browser, bob);
    for (const [p, name] of [[A.page, 'alice'], [B.page, 'bob']] as const) {
      await p.goto(srv.url + '/');
      await p.getByTestId('connect-wallet').waitFor();
      if (name === 'alice') await shot(p, '01-login');
      await p.getByTestId('connect-wallet').click();
      await p.locator('[data-testid=conn][data-state=connected]').waitFor({ timeout: 30_000 });
    }

    // alice starts a chat with bob and sends.
    await A.page.getByTestId('new-chat').fill(bob.address);
    await A.page.getByTestId('new-chat').press('Enter');
    await A.page.locator(`[data-testid=conversation][data-chat="${bob.address}"]`).waitFor();
    await A.page.getByTestId('composer').fill('hello bob');
    await A.page.getByTestId('send').click();
    await A.page.locator('[data-testid=message-text]', { hasText: 'hello bob' }).waitFor();

    // bob sees alice's chat with an unread badge, named from the Name Service.
    const bobsChat = B.page.locator(`[data-testid=chat][data-chat="${alice.address}"]`);
    await expect.poll(() => bobsChat.getByTestId('unread').textContent(), { timeout: 20_000 }).toBe('1');
    expect(await bobsChat.locator('.chat-name').textContent()).toMatch(/^alice/);
    await shot(B.page, '02-unread-badge');

    // Opening the chat marks it read: the badge goes.
    await bobsChat.click();
    await B.page.locator('[data-testid=message-text]', { hasText: 'hello bob' }).waitFor();
    await expect.poll(() => bobsChat.getByTestId('unread').count(), { timeout: 20_000 }).toBe(0);

    // bob replies quoting alice's message.
    await B.page.getByTestId('reply').first().click();
    await B.page.getByTestId('composer').fill('hi alice');
    await B.page.getByTestId('send').click();
    const quoted = A.page.locator('[data-testid=message]', { hasText: 'hi alice' });
    await quoted.waitFor({ timeout: 20_000 });
    expect(await quoted.locator('.quote').textContent()).toContain('hello bob');
    await shot(A.page, '03-conversation-reply');

    // The demo group: alice (the owner) announces first (her client creates the group's MLS group), then bob
    // posts (his joins it by external commit before encrypting): each reads the other's message.
    const bobsGroup = B.page.locator(`[data-testid=chat][data-chat="${dao}"]`);
    const alicesGroup = A.page.locator(`[data-testid=chat][data-chat="${dao}"]`);
    await alicesGroup.click();
    await A.page.getByTestId('announce').check();
    await A.page.getByTestId('composer').fill('Welcome to the demo group');
    await A.page.getByTestId('send').click();
    await A.page.locator('.announcement', { hasText: 'Welcome to the demo group' }).waitFor({ timeout: 20_000 });
    await bobsGroup.click();
    await B.page.locator('.announcement', { hasText: 'Welcome to the demo group' }).waitFor({ timeout: 20_000 });
    await B.page.getByTestId('composer').fill('group hello from bob');
    await B.page.getByTestId('send').click();
    await A.page.locator('[data-testid=message-text]', { hasText: 'group hello from bob' }).waitFor({ timeout: 20_000 });
    await shot(B.page, '04-group-announcement');

    // Drop bob's socket and keep the network down while alice sends; bob recovers everything once.
    await bobsChat.click();
    await B.page.locator('[data-testid=message-text]', { hasText: 'hi alice' }).waitFor();
    await A.page.locator(`[data-testid=chat][data-chat="${bob.address}"]`).click();
    B.block.on = true;
    for (const s of B.sockets.splice(0)) await s.close({ code: 4000, reason: 'dropped by the test' });
    await B.page.locator('[data-testid=conn][data-state=disconnected]').waitFor({ timeout: 10_000 });
    await shot(B.page, '05-reconnecting');
    const during = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
    for (const t of during) {
      await A.page.getByTestId('composer').fill(t);
      await A.page.getByTestId('send').click();
      await A.page.locator('[data-testid=message-text]', { hasText: t }).waitFor();
    }
    B.block.on = false;
    await B.page.locator('[data-testid=conn][data-state=connected]').waitFor({ timeout: 30_000 });
    for (const t of during) await B.page.locator('[data-testid=message-text]', { hasText: t }).waitFor({ timeout: 20_000 });
    // The three came through the resume after the reconnect, and the badge says so.
    await expect.poll(() => B.page.getByTestId('conn').textContent(), { timeout: 10_000 }).toContain('3 recovered');
    const seqs = await B.page.locator('[data-testid=message]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    const texts = await B.page.getByTestId('message-text').allTextContents();
    for (const t of [...during, 'hello bob', 'hi alice']) expect(texts.filter((x) => x === t)).toHaveLength(1);
    await shot(B.page, '06-resumed');

    // Pin alice's chat (it goes first) and mute the group.
    await B.page.getByTestId('pin').click();
    await B.page.locator(`[data-testid=chat][data-chat="${alice.address}"] [data-testid=pinned]`).waitFor({ timeout: 20_000 });
    expect(await B.page.locator('[data-testid=chat]').first().getAttribute('data-chat')).toBe(alice.address);
    await bobsGroup.click();
    await B.page.getByTestId('mute').click();
    await B.page.locator(`[data-testid=chat][data-chat="${dao}"] [data-testid=muted]`).waitFor({ timeout: 20_000 });
    await bobsChat.click();

    // Hide: bob hides alice's first message for himself.
    const exact = (p: Page, t: string) => p.locator('[data-testid=message]').filter({ has: p.getByTestId('message-text').getByText(t, { exact: true }) });
    await exact(B.page, 'hello bob').getByTestId('hide').click();
    await expect.poll(() => exact(B.page, 'hello bob').count(), { timeout: 20_000 }).toBe(0);
    expect(await exact(A.page, 'hello bob').count()).toBe(1); // hidden for bob only
    await shot(B.page, '07-chat-list-after-hide');

    // History paging: carol (an SDK client in Node) sent 35 messages; bob sees the newest 30, then pages back.
    const carol = chain.demo!.identities.find((i) => i.label === 'carol')!;
    const cc = new RelationClient({ baseUrl: srv.url, signer: privateKeySigner(carol.privateKey) });
    for (let i = 1; i <= 35; i++) await cc.rest.send(await cc.prepare(bob.address, `history ${i}`));
    // A reload keeps the session key, token and cursors (localStorage) and starts with no messages in memory.
    await B.page.reload();
    await B.page.getByTestId('connect-wallet').click();
    await B.page.locator('[data-testid=conn][data-state=connected]').waitFor({ timeout: 30_000 });
    const carolsChat = B.page.locator(`[data-testid=chat][data-chat="${carol.address}"]`);
    await carolsChat.waitFor({ timeout: 20_000 });
    expect(await carolsChat.getByTestId('unread').textContent()).toBe('35');
    await carolsChat.click();
    await B.page.locator('[data-testid=message-text]', { hasText: 'history 35' }).waitFor({ timeout: 20_000 });
    // the newest message can render (live) before the first history page: wait for the page, then count
    await expect.poll(() => B.page.getByTestId('message').count(), { timeout: 20_000 }).toBe(30);
    await B.page.getByTestId('older').click();
    await B.page.getByText('history 1', { exact: true }).waitFor({ timeout: 20_000 });
    expect(await B.page.getByTestId('message').count()).toBe(35);
    expect(await B.page.getByTestId('older').count()).toBe(0);
    await shot(B.page, '08-history-paged');
    await A.ctx.close();
    await B.ctx.close();
  }, 120_000);
});
